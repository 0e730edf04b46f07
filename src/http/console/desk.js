// Messo console, the URP's desk: find a ticket, read all of it, clear the work queues.
// Built on what app.js shares through window.Messo (api, h, say, can, …). Same rules as app.js:
// no inline script or handler, no eval; server data only through textContent and attributes;
// the stored HTML of an e-mail only inside an iframe sandboxed with no permission at all.
'use strict';

(function () {
  const M = window.Messo;
  if (!M) return;
  const { api, h, clear, say, can, withButton, focusHeading, showView, plural, duration } = M;
  const $ = (sel) => document.querySelector(sel);
  const TZ = 'Europe/Rome';
  const SEARCH_LIMIT = 25;
  const QUEUE_LIMIT = 50;

  // ---- words ------------------------------------------------------------------------------
  const TICKET_STATE = {
    open: 'aperta',
    running: 'in corso',
    warning: 'in preavviso',
    paused: 'sospesa',
    breached: 'termine superato',
    closed: 'chiusa',
  };
  const PRIORITY = { urgente: 'urgente', alta: 'alta', normale: 'normale', bassa: 'bassa' };
  const CATEGORY = { generale: 'generale', albo_pretorio: 'albo pretorio', in_loco: 'assistenza in loco' };
  const EVENT_KIND = {
    received: 'Pratica ricevuta',
    step_changed: 'Nuovo passo',
    integration_requested: 'Integrazione richiesta',
    integration_received: 'Integrazione ricevuta',
    priority_changed: 'Priorità cambiata',
    category_changed: 'Categoria cambiata',
    closed: 'Pratica chiusa',
    reopened: 'Pratica riaperta',
    note: 'Nota',
    rebaselined: 'Termine ricalcolato',
    contact_made: 'Contatto avvenuto',
    contact_changed: 'Recapito corretto',
    expected_date_set: 'Nuova data prevista',
    appointment_proposed: 'Appuntamento fissato',
    appointment_changed: 'Appuntamento spostato',
    appointment_cancelled: 'Appuntamento annullato',
    appointment_held: 'Appuntamento svolto',
    appointment_missed: 'Appuntamento mancato',
  };
  const SOURCE = {
    api: 'API',
    crm: 'gestionale',
    webhook: 'webhook',
    system: 'Messo',
    console: 'console URP',
    portal: 'portale',
    inbound: 'risposta del cittadino',
  };
  const MESSAGE_KIND = {
    ricevuta: 'Ricevuta',
    avanzamento: 'Avanzamento',
    richiesta_integrazione: 'Richiesta di integrazione',
    sollecito_integrazione: 'Sollecito di integrazione',
    sospensione_scaduta: 'Sospensione scaduta',
    ripresa: 'Ripresa dei termini',
    preavviso_scadenza: 'Preavviso di scadenza',
    violazione: 'Termine superato',
    chiusura: 'Chiusura',
    cittadino_irraggiungibile: 'Cittadino non raggiungibile',
    esito_incerto: 'Esito incerto',
    risposta_non_abbinata: 'Risposta non abbinata',
    risposta_non_autenticata: 'Risposta non autenticata',
    risposta_mittente_diverso: 'Risposta da un mittente diverso',
    chiamata_ricevuta: 'Chiamata ricevuta',
    revoca_sms: 'SMS disattivati',
    riattivazione_sms: 'SMS riattivati',
    prova: 'Messaggio di prova',
    rapporto_mensile: 'Rapporto mensile',
    appuntamento: 'Appuntamento',
    appuntamento_modificato: 'Appuntamento spostato',
    appuntamento_annullato: 'Appuntamento annullato',
    appuntamento_mancato: 'Appuntamento mancato',
    promemoria_appuntamento: 'Promemoria dell\'appuntamento',
  };
  const CHANNEL = { email: 'e-mail', sms: 'SMS', pec: 'PEC', phone: 'telefono', desk: 'sportello', voice: 'telefono', file: 'file' };
  const RECIPIENT = { citizen: 'al cittadino', office: 'all\'ufficio', supervisor: 'al responsabile', test: 'di prova' };
  const ROUTE = { mail: 'e-mail', email: 'e-mail', sms: 'SMS', imap: 'e-mail', pec: 'PEC', voice: 'telefono' };
  const ATTEMPT_OUTCOME = {
    delivered: 'accettato',
    accepted: 'accettato',
    retry: 'da ritentare',
    temporary: 'errore temporaneo',
    permanent: 'rifiutato',
    failed: 'rifiutato',
    rejected: 'rifiutato',
    dead: 'rifiutato',
    uncertain: 'esito incerto',
  };
  const REPLY_OUTCOME = {
    integration: 'integrazione',
    note: 'nota',
    unmatched: 'non abbinata',
    dismissed: 'archiviata',
    opt_out: 'disattivazione degli SMS',
    opt_in: 'riattivazione degli SMS',
    survey: 'risposta al questionario',
    ignored: 'ignorata',
    unauthenticated: 'mittente non verificato',
  };
  const AUDIT_ACTION = {
    'contacts.revealed': 'Recapiti mostrati',
    'attachment.downloaded': 'Allegato scaricato',
    'message.resend': 'Messaggio inviato di nuovo',
    'message.mark_delivered': 'Messaggio segnato come consegnato',
    'message.give_up': 'Invio abbandonato, canale successivo',
    'message.contact_made': 'Contatto avvenuto',
    'ticket.contact_changed': 'Recapito corretto',
    'ticket.event': 'Evento registrato dalla console',
    'inbound.attached': 'Risposta abbinata',
    'inbound.dismissed': 'Risposta archiviata',
    'opt_out.lifted': 'SMS riattivati',
    'links.revoked': 'Link revocati',
    revoke_links: 'Link revocati',
  };
  const MATCHED_BY = {
    number: 'per numero di pratica',
    fiscal_code: 'per codice fiscale',
    email: 'per e-mail',
    mobile: 'per cellulare',
    filters: 'con i filtri',
  };

  // The fate of a message in the words the desk uses on the phone.
  function messageState(m) {
    const dlr = m.dlr_state || '';
    if (m.state === 'dead' || ['failed', 'undelivered', 'expired', 'rejected'].includes(dlr)) {
      return { key: 'failed', text: 'non consegnato' };
    }
    switch (m.state) {
      case 'delivered':
        if (m.resolution && m.resolution.action === 'mark_delivered') return { key: 'ok', text: 'segnato come consegnato' };
        if (m.channel === 'sms' && dlr !== 'delivered') return { key: 'sent', text: 'inviato, senza conferma di consegna' };
        return { key: 'ok', text: 'consegnato' };
      case 'uncertain':
        return { key: 'doubt', text: 'esito incerto' };
      case 'pending':
        return { key: 'queued', text: 'in coda' };
      case 'retry':
        return { key: 'queued', text: 'in coda, nuovo tentativo' };
      case 'sending':
        return { key: 'queued', text: 'in invio' };
      case 'cancelled':
        return { key: 'off', text: 'annullato' };
      case 'handled':
        return { key: 'off', text: 'gestito dall\'ufficio' };
      default:
        return { key: 'off', text: m.state || '—' };
    }
  }

  // ---- dates and sizes --------------------------------------------------------------------
  const dayFmt = new Intl.DateTimeFormat('it-IT', { timeZone: TZ, day: 'numeric', month: 'long', year: 'numeric' });
  const clockFmt = new Intl.DateTimeFormat('it-IT', { timeZone: TZ, hour: '2-digit', minute: '2-digit', hourCycle: 'h23' });
  const localDayFmt = new Intl.DateTimeFormat('it-IT', { timeZone: 'UTC', day: 'numeric', month: 'long', year: 'numeric' });
  const sizeFmt = new Intl.NumberFormat('it-IT', { maximumFractionDigits: 1 });

  // "3 dicembre 2026, 14:05", Rome time.
  function when(iso) {
    const d = new Date(iso);
    if (Number.isNaN(d.getTime())) return String(iso);
    return dayFmt.format(d) + ', ' + clockFmt.format(d);
  }

  function timeEl(iso) {
    if (!iso) return document.createTextNode('—');
    return h('time', { datetime: iso }, when(iso));
  }

  // "2026-11-01" as "1 novembre 2026".
  function dayText(ymd) {
    const [y, m, d] = String(ymd).split('-').map(Number);
    if (!y || !m || !d) return String(ymd);
    return localDayFmt.format(new Date(Date.UTC(y, m - 1, d)));
  }

  function sizeText(n) {
    if (n == null) return '—';
    if (n < 1024) return plural(n, 'byte', 'byte');
    if (n < 1024 * 1024) return sizeFmt.format(n / 1024) + ' kB';
    return sizeFmt.format(n / (1024 * 1024)) + ' MB';
  }

  function label(map, key) {
    return key == null || key === '' ? '—' : map[key] || String(key);
  }

  function ticketHash(number) {
    return '#/ticket/' + encodeURIComponent(number);
  }

  function ticketPath(number) {
    return '/tickets/' + encodeURIComponent(number);
  }

  function ticketLink(number) {
    return number ? h('a', { href: ticketHash(number), dataset: { ticketLink: number } }, number) : '—';
  }

  // A fresh key for one display of a form: the same click sent twice records one event.
  function newKey() {
    if (window.crypto && typeof window.crypto.randomUUID === 'function') return window.crypto.randomUUID();
    const b = window.crypto.getRandomValues(new Uint8Array(16));
    b[6] = (b[6] & 0x0f) | 0x40;
    b[8] = (b[8] & 0x3f) | 0x80;
    const hex = [...b].map((x) => x.toString(16).padStart(2, '0')).join('');
    return hex.slice(0, 8) + '-' + hex.slice(8, 12) + '-' + hex.slice(12, 16) + '-' + hex.slice(16, 20) + '-' + hex.slice(20);
  }

  // A definition list's row.
  function metaRow(dl, term, ...desc) {
    dl.append(h('div', null, h('dt', null, term), h('dd', null, ...(desc.length ? desc : ['—']))));
  }

  // A table whose rows come from `rows` (arrays of cells; the first is the row's header).
  function table(id, caption, head, rows, attrs) {
    return h('table', Object.assign({ class: 'table table-compact desk-table', id }, attrs || {}),
      h('caption', { class: 'visually-hidden' }, caption),
      h('thead', null, h('tr', null, ...head.map((c) => h('th', { scope: 'col' }, c)))),
      h('tbody', null, ...rows.map((r) => h('tr', { dataset: r.data || {} },
        h('th', { scope: 'row' }, r.cells[0]),
        ...r.cells.slice(1).map((c) => h('td', null, c))))));
  }

  function detailText(d) {
    if (d == null) return '';
    if (typeof d !== 'object') return String(d);
    return Object.entries(d)
      .filter(([, v]) => v !== null && v !== undefined && v !== '')
      .map(([k, v]) => k + ': ' + (typeof v === 'object' ? JSON.stringify(v) : String(v)))
      .join(' · ');
  }

  // What the matcher decided about a reply, in Italian (the store keeps it in English, as the
  // logs do); anything not recognised is shown as stored.
  const REPLY_DETAIL = [
    [/^no ticket number, and the sender has no single ticket waiting$/,
      () => 'Nessun numero di pratica, e il mittente non ha un\'unica pratica in attesa.'],
    [/^quoted (\d+) ticket number\(s\), none on file$/,
      (m) => 'Cita ' + m[1] + ' numer' + (m[1] === '1' ? 'o' : 'i') + ' di pratica, nessuno in archivio.'],
    [/^ticket matched by number$/, () => 'Abbinata alla pratica dal numero citato.'],
    [/^ticket matched by sender$/, () => 'Abbinata alla pratica dal recapito del mittente.'],
    [/^ticket matched by (\w+), but the sender is not authenticated \((.*)\): a note, the office decides$/,
      (m) => 'Abbinata, ma il mittente non è verificato (' + m[2] + '): registrata come nota, decide l\'ufficio.'],
    [/^names a ticket, from an address not on file: a note, the office decides$/,
      () => 'Cita una pratica da un recapito non in anagrafica: registrata come nota, decide l\'ufficio.'],
    [/^an auto-reply or bounce: not answered$/, () => 'Risposta automatica o rimbalzo: nessuna azione.'],
    [/^attached to ticket (\S+) by (\S+) from the console(?:: (.*))?$/s,
      (m) => 'Abbinata alla pratica ' + m[1] + ' da ' + m[2] + ' dalla console' + (m[3] ? ': ' + m[3] : '.')],
  ];

  function replyDetail(d) {
    if (typeof d !== 'string') return detailText(d);
    for (const [re, say] of REPLY_DETAIL) {
      const m = d.match(re);
      if (m) return say(m);
    }
    return d;
  }

  const RESOLUTION = {
    resend: 'inviato di nuovo',
    mark_delivered: 'segnato come consegnato',
    give_up: 'abbandonato, passato al canale successivo',
    contact_made: 'contatto avvenuto',
    contact_changed: 'inviato di nuovo al recapito corretto',
  };

  // How the office handled a message from a work queue: "inviato di nuovo da anna il …".
  function resolutionText(r) {
    if (!r || typeof r !== 'object') return String(r);
    const out = [label(RESOLUTION, r.action)];
    if (r.by) out.push('da ' + r.by);
    if (r.at) out.push('il ' + when(r.at));
    const rest = Object.assign({}, r);
    for (const k of ['action', 'by', 'at']) delete rest[k];
    const more = detailText(rest);
    return out.join(' ') + (more ? ' · ' + more : '');
  }

  function errorText(e) {
    if (e.status === 403) return 'operazione non consentita al tuo profilo (' + e.message + ')';
    if (e.status === 404 && (!e.body || !e.body.detail)) return 'non trovato.';
    return e.message;
  }

  // ---- queue counts in the navigation -----------------------------------------------------
  const counts = { seq: 0, last: null };

  async function refreshCounts() {
    if (!M.user()) return;
    const seq = ++counts.seq;
    let c;
    try {
      c = await api('GET', '/queues');
    } catch (_) {
      return;
    }
    if (seq !== counts.seq || !c) return;
    counts.last = c;
    const work = (c.uncertain || 0) + (c.unreachable || 0) + (c.unmatched || 0);
    $('#nav-queues-count').textContent = ' (' + work + ')';
    $('#nav-queues').dataset.work = String(work);
    for (const el of document.querySelectorAll('[data-count]')) {
      const n = c[el.dataset.count];
      el.textContent = n == null ? '' : ' (' + n + ')';
    }
    if (!$('#queue-overview').hidden) renderOverview();
  }

  // ---- search -----------------------------------------------------------------------------
  const search = { query: null, cursors: [], offices: new Set(), seq: 0 };

  function openSearch(parts, moveFocus) {
    showView('search');
    document.title = 'Cerca pratica · Messo';
    if (moveFocus) focusHeading('#search-title');
    else if (!$('#search-q').value) $('#search-q').focus();
  }

  function searchParams() {
    const q = new URLSearchParams();
    const text = $('#search-q').value.trim();
    if (text) q.set('q', text);
    const office = $('#search-office').value.trim();
    if (office) q.set('office', office);
    if ($('#search-state').value) q.set('state', $('#search-state').value);
    if ($('#search-from').value) q.set('from', $('#search-from').value);
    if ($('#search-to').value) q.set('to', $('#search-to').value);
    return q;
  }

  function markSearchField(field) {
    const id = { q: '#search-q', number: '#search-q', fiscal_code: '#search-q', email: '#search-q', mobile: '#search-q',
      office: '#search-office', state: '#search-state', from: '#search-from', to: '#search-to' }[field];
    if (id) $(id).setAttribute('aria-invalid', 'true');
    return id;
  }

  async function onSearch(ev) {
    ev.preventDefault();
    const err = $('#search-error');
    err.textContent = '';
    for (const el of document.querySelectorAll('#search-form [aria-invalid]')) el.removeAttribute('aria-invalid');
    const from = $('#search-from').value;
    const to = $('#search-to').value;
    if (from && to && to < from) {
      err.textContent = 'La data finale viene prima di quella iniziale.';
      markSearchField('to');
      $('#search-to').focus();
      return;
    }
    search.query = searchParams();
    search.cursors = [];
    await withButton($('#btn-search'), () => runSearch(null, true));
  }

  async function runSearch(after, fresh) {
    const q = new URLSearchParams(search.query || '');
    q.set('limit', String(SEARCH_LIMIT));
    if (after) q.set('after', after);
    const seq = ++search.seq;
    const box = $('#search-results');
    box.setAttribute('aria-busy', 'true');
    let r;
    try {
      r = await api('GET', '/tickets?' + q.toString());
    } catch (e) {
      box.removeAttribute('aria-busy');
      if (seq !== search.seq || e.status === 401) return;
      const err = $('#search-error');
      if (e.status === 422) {
        let first = null;
        for (const fe of (e.body && e.body.errors) || []) first = first || markSearchField(fe.field);
        err.textContent = 'Ricerca non valida: ' + e.message;
        if (first) $(first).focus();
      } else {
        err.textContent = 'La ricerca non è riuscita: ' + errorText(e);
      }
      say('Ricerca non riuscita: ' + errorText(e), 'error');
      return;
    }
    if (seq !== search.seq) return;
    box.removeAttribute('aria-busy');
    const items = (r && r.items) || [];
    // One ticket named by its number: straight to its page.
    if (fresh && !after && r.matched_by === 'number' && items.length === 1 && !r.next) {
      say('Pratica ' + items[0].number + ' trovata.', 'ok');
      location.hash = ticketHash(items[0].number);
      return;
    }
    renderResults(r, items, after);
    const page = search.cursors.length + 1;
    const how = MATCHED_BY[r.matched_by] ? ' (ricerca ' + MATCHED_BY[r.matched_by] + ')' : '';
    say(items.length
      ? 'Trovate ' + plural(items.length, 'pratica', 'pratiche') + (page > 1 ? ', pagina ' + page : '') + how + '.'
      : 'Nessuna pratica trovata' + how + '.', items.length ? 'ok' : 'info');
    focusHeading('#search-results-title');
  }

  function renderResults(r, items) {
    $('#search-results').hidden = false;
    const tbody = $('#search-table tbody');
    clear(tbody);
    for (const t of items) {
      if (t.office) search.offices.add(t.office);
      const c = t.citizen || {};
      const contacts = [c.fiscal_code, c.email, c.mobile].filter(Boolean).join(' · ');
      const st = t.state === 'closed' && t.closed_at ? 'closed' : t.state;
      tbody.append(h('tr', { dataset: { ticket: t.number, state: t.state } },
        h('th', { scope: 'row' }, ticketLink(t.number)),
        h('td', null, t.subject || ''),
        h('td', null, t.office || ''),
        h('td', null, h('span', { class: 'state state-' + st }, label(TICKET_STATE, st))),
        h('td', null, timeEl(t.received_at)),
        h('td', null, t.state === 'closed' ? h('span', null, 'chiusa il ', timeEl(t.closed_at)) : timeEl(t.due_at)),
        h('td', { class: 'masked' }, contacts || '—')));
    }
    const page = search.cursors.length + 1;
    $('#search-table').hidden = !items.length;
    $('#search-empty').hidden = items.length > 0;
    $('#search-summary').textContent = items.length
      ? 'Pagina ' + page + ': ' + plural(items.length, 'pratica', 'pratiche') + ', dalla più recente' +
        (MATCHED_BY[r.matched_by] ? ', ricerca ' + MATCHED_BY[r.matched_by] : '') + '.'
      : '';
    const next = $('#btn-search-next');
    next.hidden = !r.next;
    next.dataset.cursor = r.next || '';
    $('#btn-search-first').hidden = page === 1;
    const list = $('#search-offices');
    clear(list);
    for (const o of [...search.offices].sort()) list.append(h('option', { value: o }));
  }

  async function onSearchNext() {
    const btn = $('#btn-search-next');
    const cursor = btn.dataset.cursor;
    if (!cursor) return;
    search.cursors.push(cursor);
    await withButton(btn, () => runSearch(cursor, false));
  }

  async function onSearchFirst() {
    search.cursors = [];
    await withButton($('#btn-search-first'), () => runSearch(null, false));
  }

  function onSearchReset() {
    $('#search-form').reset();
    $('#search-error').textContent = '';
    for (const el of document.querySelectorAll('#search-form [aria-invalid]')) el.removeAttribute('aria-invalid');
    $('#search-results').hidden = true;
    clear($('#search-table tbody'));
    search.query = null;
    search.cursors = [];
    $('#search-q').focus();
  }

  // ---- the ticket page --------------------------------------------------------------------
  const ticket = { number: null, data: null, seq: 0 };

  function openTicket(parts, moveFocus) {
    const number = parts.slice(1).join('/');
    showView('ticket', 'search');
    loadTicket(number, { focus: moveFocus });
  }

  async function loadTicket(number, opts) {
    opts = opts || {};
    const changed = ticket.number !== number;
    ticket.number = number;
    const seq = ++ticket.seq;
    $('#ticket-title').textContent = 'Pratica ' + number;
    document.title = 'Pratica ' + number + ' · Messo';
    if (changed) {
      $('#ticket-body').hidden = true;
      for (const f of document.querySelectorAll('.action-form')) f.reset();
    }
    $('#ticket-error').hidden = true;
    if (opts.focus) focusHeading('#ticket-title');
    const body = $('#ticket-body');
    body.setAttribute('aria-busy', 'true');
    let t;
    try {
      t = await api('GET', ticketPath(number) + (opts.reveal ? '?reveal=contacts' : ''));
    } catch (e) {
      body.removeAttribute('aria-busy');
      if (seq !== ticket.seq || e.status === 401) return false;
      const box = $('#ticket-error');
      box.textContent = e.status === 404
        ? 'La pratica ' + number + ' non esiste. Controlla il numero o cercala per codice fiscale.'
        : 'Impossibile leggere la pratica: ' + errorText(e);
      box.hidden = false;
      body.hidden = true;
      say('Pratica ' + number + ': ' + (e.status === 404 ? 'non trovata.' : errorText(e)), 'error');
      return false;
    }
    if (seq !== ticket.seq) return false;
    body.removeAttribute('aria-busy');
    ticket.data = t;
    renderTicket(t);
    body.hidden = false;
    return true;
  }

  function renderTicket(d) {
    const t = d.ticket || {};
    $('#ticket-title').textContent = 'Pratica ' + t.number + (t.subject ? ': ' + t.subject : '');
    renderToc();
    renderHeader(t, d);
    renderSla(d.sla || {}, t);
    renderEvents(d.events || []);
    renderMessages(d.messages || []);
    renderReplies(d.replies || []);
    renderLinks(d.links || {}, t);
    renderAudit(d.audit || []);
    renderActions(d);
  }

  function renderToc() {
    const toc = $('#ticket-toc');
    if (toc.firstChild) return;
    for (const [id, text] of [['t-head-title', 'Dati'], ['t-sla-title', 'Termine'], ['t-events-title', 'Cronologia'],
      ['t-messages-title', 'Messaggi'], ['t-replies-title', 'Risposte'], ['t-links-title', 'Link'],
      ['t-actions-title', 'Azioni'], ['t-audit-title', 'Registro']]) {
      toc.append(h('li', null, h('a', { href: '#' + id, dataset: { focus: id } }, text)));
    }
  }

  function renderHeader(t, d) {
    const meta = $('#ticket-meta');
    clear(meta);
    metaRow(meta, 'Numero', t.number);
    metaRow(meta, 'Oggetto', t.subject || '—');
    metaRow(meta, 'Ufficio', t.office || '—');
    metaRow(meta, 'Priorità', label(PRIORITY, t.priority));
    metaRow(meta, 'Categoria', label(CATEGORY, t.category));
    metaRow(meta, 'Passo attuale', t.step ? (t.step.step + (t.step.text ? ': ' + t.step.text : '')) : '—');
    metaRow(meta, 'Ricevuta il', timeEl(t.received_at));
    metaRow(meta, 'Ricevuta tramite', label(SOURCE, t.received_via));
    if (t.closed_at) metaRow(meta, 'Chiusa il', timeEl(t.closed_at));
    metaRow(meta, 'Versione delle regole', t.policy_version != null ? String(t.policy_version) : '—');
    metaRow(meta, 'Versione del calendario', t.calendar_version != null ? String(t.calendar_version) : '—');

    const c = t.citizen || {};
    const cit = $('#ticket-citizen');
    clear(cit);
    metaRow(cit, 'Lingua', c.language === 'en' ? 'inglese' : c.language === 'it' ? 'italiano' : c.language || '—');
    metaRow(cit, 'Canale preferito', label(CHANNEL, c.preferred_channel));
    metaRow(cit, 'E-mail', c.email || '—');
    metaRow(cit, 'Cellulare', c.mobile || '—');
    metaRow(cit, 'PEC', c.pec || '—');
    metaRow(cit, 'Codice fiscale', c.fiscal_code || '—');
    metaRow(cit, 'Canali disattivati', (c.opt_out || []).length ? c.opt_out.map((x) => label(CHANNEL, x)).join(', ') : 'nessuno');
    cit.dataset.revealed = c.revealed ? 'true' : 'false';
    $('#reveal-box').hidden = !can('editor') || !!c.revealed;
  }

  function renderSla(s, t) {
    const dl = $('#ticket-sla');
    clear(dl);
    let state = label(TICKET_STATE, s.state);
    if (s.state === 'closed') state = s.closed_late ? 'chiusa fuori termine' : 'chiusa nei termini';
    metaRow(dl, 'Stato', h('span', { class: 'state state-' + (s.state || ''), id: 'sla-state', dataset: { state: s.state || '' } }, state));
    metaRow(dl, 'Scadenza', timeEl(s.due_at));
    if (s.state === 'paused') metaRow(dl, 'Sospesa dal', timeEl(s.paused_since));
    if (s.target_s != null) metaRow(dl, 'Tempo previsto', duration(s.target_s));
    if (s.elapsed_s != null) metaRow(dl, 'Tempo trascorso', duration(s.elapsed_s));
    if (s.remaining_s != null && s.state !== 'closed') {
      metaRow(dl, 'Tempo residuo', s.remaining_s < 0 ? 'scaduto da ' + duration(s.remaining_s) : duration(s.remaining_s));
    }
    if (t.closed_at) metaRow(dl, 'Chiusa il', timeEl(t.closed_at));
    $('#ticket-explain').textContent = s.explanation_text || 'Nessun conteggio disponibile.';
  }

  // The fields of an event worth reading, in Italian.
  function eventDetail(e) {
    const d = e.data || {};
    const out = [];
    if (d.step) out.push('Passo: ' + d.step);
    if (d.text) out.push(d.text);
    if (d.missing) {
      const list = Array.isArray(d.missing) ? d.missing : String(d.missing).split('\n');
      out.push('Documenti mancanti: ' + list.filter(Boolean).join('; '));
    }
    if (d.priority) out.push('Priorità: ' + label(PRIORITY, d.priority));
    if (d.category) out.push('Categoria: ' + label(CATEGORY, d.category));
    if (d.channel) out.push('Canale: ' + label(CHANNEL, d.channel));
    for (const k of ['email', 'mobile', 'pec']) if (d[k]) out.push('Nuovo recapito ' + label(CHANNEL, k === 'mobile' ? 'sms' : k) + ': ' + d[k]);
    if (d.reason) out.push('Motivo: ' + d.reason);
    if (d.actor) out.push('Da: ' + d.actor);
    if (d.outcome && typeof d.outcome === 'string') out.push('Esito: ' + d.outcome);
    return out;
  }

  function renderEvents(events) {
    const ol = $('#ticket-events');
    clear(ol);
    if (!events.length) {
      ol.append(h('li', { class: 'muted' }, 'Nessun evento.'));
      return;
    }
    for (const e of events) {
      const lines = eventDetail(e);
      ol.append(h('li', { dataset: { kind: e.kind, event: e.id } },
        h('p', { class: 'event-head' },
          h('strong', null, label(EVENT_KIND, e.kind)), ' · ', timeEl(e.at),
          h('span', { class: 'muted' }, ' · fonte: ' + label(SOURCE, e.source))),
        ...lines.map((l) => h('p', { class: 'event-line' }, l))));
    }
  }

  function messageTitle(m) {
    return label(MESSAGE_KIND, m.kind) + ' · ' + label(CHANNEL, m.channel) + ' ' + (RECIPIENT[m.recipient] || m.recipient || '');
  }

  function renderMessages(list) {
    const box = $('#ticket-messages');
    clear(box);
    if (!list.length) {
      box.append(h('p', { class: 'muted' }, 'Nessun messaggio per questa pratica.'));
      return;
    }
    for (const m of list) box.append(renderMessage(m));
  }

  function renderMessage(m) {
    const st = messageState(m);
    const headId = 'msg-' + m.id + '-title';
    const art = h('article', { class: 'message msg-' + st.key, id: 'msg-' + m.id, 'aria-labelledby': headId,
      dataset: { message: m.id, state: m.state, kind: m.kind, channel: m.channel } });
    art.append(h('h3', { id: headId },
      messageTitle(m) + ' ', h('span', { class: 'badge badge-' + st.key, dataset: { fate: st.key } }, st.text)));
    const dl = h('dl', { class: 'meta' });
    metaRow(dl, 'Indirizzo', m.address || '—');
    metaRow(dl, 'Lingua', m.language === 'en' ? 'inglese' : m.language === 'it' ? 'italiano' : m.language || '—');
    metaRow(dl, 'Creato', timeEl(m.created_at));
    if (m.not_before && m.state !== 'delivered') metaRow(dl, 'Da inviare dal', timeEl(m.not_before));
    if (m.delivered_at) metaRow(dl, 'Consegnato il', timeEl(m.delivered_at));
    metaRow(dl, 'Tentativi', String(m.attempts ?? 0) + (m.resent ? ' · ' + plural(m.resent, 'reinvio', 'reinvii') : ''));
    if (m.provider) metaRow(dl, 'Gestore', m.provider + (m.provider_id ? ' · id ' + m.provider_id : ''));
    if (m.dlr_state) metaRow(dl, 'Ricevuta di consegna', m.dlr_state);
    if (m.in_doubt) metaRow(dl, 'Attenzione', 'un invio è stato interrotto: possibile doppione');
    if (m.last_error) metaRow(dl, 'Ultimo errore', m.last_error);
    if (m.resolution) metaRow(dl, 'Gestito dall\'ufficio', resolutionText(m.resolution));
    art.append(dl);

    const w = m.words;
    if (!w) {
      art.append(h('p', { class: 'muted' }, 'Le parole del messaggio non sono state conservate.'));
    } else {
      const words = h('div', { class: 'words' });
      if (w.subject) words.append(h('h4', null, 'Oggetto'), h('p', { class: 'preview-box', dataset: { part: 'subject' } }, w.subject));
      if (w.text && !w.sms) words.append(h('h4', null, 'Testo'), h('pre', { class: 'preview-box', dataset: { part: 'text' } }, w.text));
      if (w.html) {
        words.append(h('h4', null, 'Versione HTML'));
        const frame = h('iframe', {
          sandbox: '',
          class: 'mail-frame',
          title: 'Versione HTML del messaggio: ' + messageTitle(m),
          referrerpolicy: 'no-referrer',
          loading: 'lazy',
        });
        // The sandbox is set before the content, and never changed: no scripts, opaque origin.
        frame.srcdoc = w.html;
        words.append(frame);
      }
      if (w.sms) {
        const enc = String(w.sms.encoding || '').toUpperCase().replace('GSM7', 'GSM-7').replace('UCS2', 'UCS-2');
        words.append(h('h4', null, 'SMS'),
          h('pre', { class: 'preview-box', dataset: { part: 'sms' } }, w.sms.text || ''),
          h('p', { class: 'sms-counter', dataset: { parts: w.sms.parts } }, plural(w.sms.parts || 1, 'parte', 'parti') + (enc ? ', ' + enc : '')));
      }
      if (w.template) {
        words.append(h('p', { class: 'hint' }, 'Modello ' + w.template + (w.version != null ? ', versione ' + w.version : '')));
      }
      art.append(words);
    }

    const attempts = m.attempt_log || [];
    if (attempts.length) {
      art.append(h('h4', null, 'Tentativi di invio'), table('attempts-' + m.id, 'Tentativi di invio del messaggio ' + m.id,
        ['N.', 'Inizio', 'Canale', 'Gestore', 'Risposta del gestore'],
        attempts.map((a) => ({
          data: { attempt: a.attempt, outcome: a.outcome || '' },
          cells: [String(a.attempt), h('span', null, timeEl(a.started_at), a.latency_ms != null ? ' (' + a.latency_ms + ' ms)' : ''),
            label(CHANNEL, a.channel), a.provider || '—',
            [label(ATTEMPT_OUTCOME, a.outcome), a.code ? 'codice ' + a.code : '', a.provider_id ? 'id ' + a.provider_id : '', a.error || '']
              .filter(Boolean).join(' · ')],
        }))));
    }
    const receipts = m.receipts || [];
    if (receipts.length) {
      art.append(h('h4', null, 'Ricevute'), table('receipts-' + m.id, 'Ricevute del messaggio ' + m.id,
        ['Ricevuta il', 'Fonte', 'Esito', 'Dettaglio'],
        receipts.map((r) => ({
          cells: [timeEl(r.received_at), r.source || '—', (r.kind || '—') + (r.final ? ', stato finale: ' + r.final : ''), detailText(r.detail) || '—'],
        }))));
    }
    const parts = m.parts || [];
    if (parts.length) {
      art.append(h('h4', null, 'Parti dell\'SMS'), table('parts-' + m.id, 'Stato delle parti dell\'SMS ' + m.id,
        ['Parte', 'Stato', 'Aggiornato'],
        parts.map((p) => ({ cells: [String(p.part), p.state || '—', timeEl(p.updated_at)] }))));
    }
    return art;
  }

  function renderReplies(list) {
    const box = $('#ticket-replies');
    clear(box);
    if (!list.length) {
      box.append(h('p', { class: 'muted' }, 'Nessuna risposta del cittadino.'));
      return;
    }
    for (const r of list) {
      const headId = 'reply-' + r.id + '-title';
      const art = h('article', { class: 'message', 'aria-labelledby': headId, dataset: { reply: r.id, outcome: r.outcome || '' } },
        h('h3', { id: headId }, 'Risposta via ' + label(ROUTE, r.route) + ' del ', timeEl(r.received_at)));
      const dl = h('dl', { class: 'meta' });
      metaRow(dl, 'Mittente', r.sender || '—');
      metaRow(dl, 'Esito', label(REPLY_OUTCOME, r.outcome || r.status));
      if (r.detail) metaRow(dl, 'Dettaglio', replyDetail(r.detail));
      art.append(dl);
      if (r.subject) art.append(h('h4', null, 'Oggetto'), h('p', { class: 'preview-box' }, r.subject));
      if (r.text) art.append(h('h4', null, 'Testo'), h('pre', { class: 'preview-box' }, r.text));
      const atts = r.attachments || [];
      if (atts.length) {
        const ul = h('ul', { class: 'attachments' });
        for (const a of atts) {
          const what = a.name + ' (' + (a.content_type || 'tipo sconosciuto') + ', ' + sizeText(a.size) + ')';
          let tail = null;
          if (!a.stored) tail = h('span', { class: 'muted' }, ' — non conservato: supera la dimensione massima');
          else if (can('editor')) {
            tail = h('span', null, ' — ', h('a', {
              href: '/api/v1/admin/inbound/' + encodeURIComponent(r.id) + '/attachments/' + encodeURIComponent(a.index),
              download: a.name || '',
              dataset: { attachment: a.index },
            }, 'Scarica ', h('span', { class: 'visually-hidden' }, a.name)));
          }
          ul.append(h('li', null, what, tail));
        }
        art.append(h('h4', null, 'Allegati'), ul);
        if (can('editor')) art.append(h('p', { class: 'hint' }, 'Ogni download è registrato nel registro delle operazioni.'));
      }
      box.append(art);
    }
  }

  function renderLinks(l, t) {
    const dl = $('#ticket-links');
    clear(dl);
    const revoked = l.revoked_at || t.links_revoked_at;
    metaRow(dl, 'Stato', revoked ? h('span', null, 'revocati il ', timeEl(revoked)) : 'attivi');
    metaRow(dl, 'Messaggi con il link', String(l.messages_with_link ?? 0));
    metaRow(dl, 'Ultimo link emesso', timeEl(l.last_issued_at));
  }

  function renderAudit(list) {
    const box = $('#ticket-audit');
    clear(box);
    if (!list.length) {
      box.append(h('p', { class: 'muted' }, 'Nessuna operazione registrata per questa pratica.'));
      return;
    }
    box.append(table('audit-table', 'Operazioni registrate sulla pratica', ['Quando', 'Chi', 'Operazione', 'Dettaglio'],
      list.map((a) => ({
        data: { action: a.action },
        cells: [timeEl(a.at), a.actor || '—', label(AUDIT_ACTION, a.action), detailText(a.detail) || '—'],
      }))));
  }

  // ---- staff actions on the ticket ----------------------------------------------------------
  function renderActions(d) {
    const section = $('#ticket-actions');
    const off = $('#actions-off');
    const editor = can('editor');
    const t = d.ticket || {};
    section.hidden = false;
    if (!editor) {
      off.textContent = 'Il tuo profilo consente solo la consultazione: le azioni sono riservate alla redazione e all\'amministrazione.';
      off.hidden = false;
      $('#actions-forms').hidden = true;
      return;
    }
    // admin.staff_events off: the CRM records what happens to the ticket (steps, integration
    // requests, closures, notes); reaching the citizen stays the office's, so the contact forms
    // are there in either mode.
    const allowed = d.actions_allowed !== false;
    $('#actions-forms').hidden = false;
    off.hidden = allowed;
    off.textContent = allowed ? '' : 'Passi, richieste di integrazione, chiusure e note arrivano dal ' +
      'gestionale: qui si registrano solo i contatti con il cittadino.';
    const closed = !!t.closed_at;
    const onSite = t.category === 'in_loco';
    for (const [id, show] of [['#form-step', allowed && !closed], ['#form-integration', allowed && !closed],
      ['#form-close', allowed && !closed], ['#form-note', allowed], ['#form-appointment', allowed && !closed && onSite]]) {
      $(id).closest('details').hidden = !show;
    }
    showAppointment(d);
    // Notices that never reached the citizen: a contact made by phone or at the desk settles them.
    const sel = $('#contact-made-message');
    clear(sel);
    const missed = (d.messages || []).filter((m) => m.recipient === 'citizen' &&
      (m.state === 'dead' || m.state === 'uncertain' || ['failed', 'undelivered', 'expired'].includes(m.dlr_state || '')));
    for (const m of missed) {
      sel.append(h('option', { value: String(m.id) }, messageTitle(m) + ', ' + when(m.created_at) + ' — ' + messageState(m).text));
    }
    $('#contact-made-box').hidden = !missed.length;
    for (const f of document.querySelectorAll('.action-form')) {
      f.dataset.key = newKey();
      clearFormError(f);
    }
  }

  // The appointment still to take place, read from the events (the last proposed or moved one,
  // unless cancelled, held or missed after it).
  function bookedAppointment(events) {
    let booked = null;
    for (const e of events || []) {
      if (e.kind === 'appointment_proposed' || e.kind === 'appointment_changed') booked = e;
      else if (['appointment_cancelled', 'appointment_held', 'appointment_missed', 'closed'].includes(e.kind)) booked = null;
    }
    return booked;
  }

  function showAppointment(d) {
    const form = $('#form-appointment');
    const booked = bookedAppointment(d.events);
    const data = (booked && booked.data) || {};
    $('#appointment-current').textContent = booked
      ? 'Appuntamento fissato: ' + when(data.starts_at) + ', ' + data.place + ' (' + data.officer + ').'
      : 'Nessun appuntamento fissato.' + (d.sla && d.sla.due_at ? ' Termine: ' + when(d.sla.due_at) + '.' : '');
    for (const o of form.elements.action.options) {
      o.disabled = booked ? o.value === 'appointment_proposed' : o.value !== 'appointment_proposed';
    }
    form.elements.action.value = booked ? 'appointment_changed' : 'appointment_proposed';
  }

  // The office's UTC offset at instant `t` (milliseconds east of UTC).
  const offsetFmt = new Intl.DateTimeFormat('en-US', { timeZone: TZ, timeZoneName: 'longOffset' });
  function officeOffset(t) {
    const part = offsetFmt.formatToParts(new Date(t)).find((p) => p.type === 'timeZoneName');
    const m = /GMT([+-])(\d{2}):(\d{2})/.exec(part ? part.value : '');
    return m ? (m[1] === '-' ? -1 : 1) * (Number(m[2]) * 60 + Number(m[3])) * 60000 : 0;
  }

  // A datetime-local value read as the office's wall-clock time (Rome, whatever the browser's
  // zone), as RFC 3339 in UTC with whole seconds; '' when it is not a date and time.
  function officeInstant(local) {
    const m = /^(\d{4})-(\d{2})-(\d{2})T(\d{2}):(\d{2})/.exec(local);
    if (!m) return '';
    const wall = Date.UTC(Number(m[1]), Number(m[2]) - 1, Number(m[3]), Number(m[4]), Number(m[5]));
    const t = wall - officeOffset(wall - officeOffset(wall));
    return new Date(t).toISOString().replace(/\.\d{3}Z$/, 'Z');
  }

  function appointmentRequest(form, v, need, number) {
    const kind = v('action');
    const body = { kind };
    if (kind === 'appointment_proposed' || kind === 'appointment_changed') {
      if (!v('starts_at')) return need('starts_at', 'Indica giorno e ora dell\'appuntamento.');
      const minutes = Number(v('minutes'));
      if (!Number.isInteger(minutes) || minutes < 5 || minutes > 480) return need('minutes', 'La durata va da 5 a 480 minuti.');
      if (!v('place')) return need('place', 'Indica il luogo.');
      if (!v('officer')) return need('officer', 'Indica l\'operatore.');
      Object.assign(body, { starts_at: officeInstant(v('starts_at')), minutes, place: v('place'), officer: v('officer') });
    }
    if (kind === 'appointment_changed' || kind === 'appointment_cancelled') {
      if (!v('reason')) return need('reason', 'Indica il motivo: il cittadino lo legge.');
    }
    if (v('reason')) body[kind === 'appointment_held' ? 'text' : 'reason'] = v('reason');
    return { path: ticketPath(number) + '/events', body, event: true,
      done: label(EVENT_KIND, kind) + ' sulla pratica ' + number + '.' };
  }

  function formError(form, message, field) {
    let p = form.querySelector('.form-error');
    if (!p) {
      p = h('p', { class: 'error-text form-error', role: 'alert' });
      form.insertBefore(p, form.querySelector('button[type="submit"]'));
    }
    p.textContent = message;
    if (field) {
      field.setAttribute('aria-invalid', 'true');
      field.focus();
    }
  }

  function clearFormError(form) {
    const p = form.querySelector('.form-error');
    if (p) p.textContent = '';
    for (const el of form.querySelectorAll('[aria-invalid]')) el.removeAttribute('aria-invalid');
  }

  // A datetime-local value read as Rome's wall clock, written as RFC 3339 with Rome's offset
  // then (+01:00 or +02:00); null for a time that does not exist there (the spring gap).
  function romeOffset(local) {
    const m = /^(\d{4})-(\d{2})-(\d{2})T(\d{2}):(\d{2})$/.exec(local);
    if (!m) return null;
    const asUtc = Date.UTC(+m[1], +m[2] - 1, +m[3], +m[4], +m[5]);
    const fmt = new Intl.DateTimeFormat('en-CA', { timeZone: TZ, year: 'numeric', month: '2-digit',
      day: '2-digit', hour: '2-digit', minute: '2-digit', hourCycle: 'h23' });
    for (const off of [1, 2]) {
      const p = {};
      for (const x of fmt.formatToParts(new Date(asUtc - off * 3600000))) p[x.type] = x.value;
      if (p.year + '-' + p.month + '-' + p.day + 'T' + p.hour + ':' + p.minute === local) {
        return local + ':00+0' + off + ':00';
      }
    }
    return null;
  }

  // What each form sends: [method path, body, what the status line says] or an error.
  function actionRequest(form) {
    const number = ticket.number;
    const v = (name) => (form.elements[name] ? form.elements[name].value.trim() : '');
    const need = (name, message) => ({ error: message, field: form.elements[name] });
    switch (form.id) {
      case 'form-step':
        if (!v('step')) return need('step', 'Indica il passo.');
        if (!v('text')) return need('text', 'Scrivi il testo per il cittadino.');
        return { path: ticketPath(number) + '/events', body: { kind: 'step_changed', step: v('step'), text: v('text') },
          event: true, done: 'Passo «' + v('step') + '» aggiunto alla pratica ' + number + '.' };
      case 'form-integration': {
        const missing = v('missing').split('\n').map((x) => x.trim()).filter(Boolean);
        if (!missing.length) return need('missing', 'Indica almeno un documento mancante, uno per riga.');
        return { path: ticketPath(number) + '/events', body: { kind: 'integration_requested', missing }, event: true,
          done: 'Integrazione richiesta (' + plural(missing.length, 'documento', 'documenti') + '): il termine è sospeso.' };
      }
      case 'form-close':
        if (!v('text')) return need('text', 'Scrivi l\'esito della pratica.');
        return { path: ticketPath(number) + '/events', body: { kind: 'closed', text: v('text') }, event: true,
          done: 'Pratica ' + number + ' chiusa.' };
      case 'form-appointment':
        return appointmentRequest(form, v, need, number);
      case 'form-note':
        if (!v('text')) return need('text', 'Scrivi la nota.');
        return { path: ticketPath(number) + '/events', body: { kind: 'note', text: v('text') }, event: true,
          done: 'Nota aggiunta alla pratica ' + number + '.' };
      case 'form-expected': {
        if (!v('expected_at')) return need('expected_at', 'Indica la nuova data prevista.');
        if (!v('reason')) return need('reason', 'Scrivi il motivo per il cittadino.');
        const at = romeOffset(v('expected_at'));
        if (!at) return need('expected_at', 'Data non valida.');
        return { path: ticketPath(number) + '/events', body: { kind: 'expected_date_set', expected_at: at, reason: v('reason') },
          event: true, done: 'Nuova data prevista comunicata al cittadino per la pratica ' + number + '.' };
      }
      case 'form-contact-made':
        if (!v('message')) return need('message', 'Scegli il messaggio.');
        if (!v('text')) return need('text', 'Scrivi cosa è stato detto al cittadino.');
        return { path: '/messages/' + encodeURIComponent(v('message')) + '/contact-made',
          body: { channel: v('channel'), text: v('text') }, done: 'Contatto registrato sulla pratica ' + number + '.' };
      case 'form-contact': {
        const body = {};
        for (const k of ['email', 'mobile', 'pec']) if (v(k)) body[k] = v(k);
        if (!Object.keys(body).length) return need('email', 'Indica almeno un nuovo recapito.');
        if (!v('reason')) return need('reason', 'Indica il motivo della correzione.');
        body.reason = v('reason');
        return { path: ticketPath(number) + '/contact', body,
          done: 'Recapito corretto: gli avvisi non arrivati partono verso il nuovo recapito.' };
      }
      default:
        return null;
    }
  }

  async function onActionSubmit(ev) {
    const form = ev.target;
    if (!(form instanceof HTMLFormElement) || !form.classList.contains('action-form')) return;
    ev.preventDefault();
    clearFormError(form);
    const req = actionRequest(form);
    if (!req) return;
    if (req.error) {
      formError(form, req.error, req.field);
      return;
    }
    const btn = form.querySelector('button[type="submit"]');
    await withButton(btn, async () => {
      try {
        await api('POST', req.path, req.body, req.event ? { headers: { 'Idempotency-Key': form.dataset.key } } : undefined);
      } catch (e) {
        if (e.status === 401) return;
        let field = null;
        for (const fe of (e.body && e.body.errors) || []) {
          const name = String(fe.field || '').split('.').pop();
          if (form.elements[name] && !field) field = form.elements[name];
        }
        formError(form, 'Non riuscito: ' + errorText(e), field);
        say('Azione non riuscita: ' + errorText(e), 'error');
        return;
      }
      form.reset();
      say(req.done, 'ok');
      await loadTicket(ticket.number);
      refreshCounts();
    });
  }

  async function onReveal() {
    const number = ticket.number;
    await withButton($('#btn-reveal'), async () => {
      if (await loadTicket(number, { reveal: true })) {
        say('Recapiti mostrati per la pratica ' + number + ': la consultazione è registrata nel registro delle operazioni.', 'ok');
        const first = document.querySelector('#ticket-citizen dd');
        if (first) $('#t-head-title').focus();
      }
    });
  }

  // ---- the confirmation dialog ------------------------------------------------------------
  const dialog = { opener: null, run: null, fallback: null, after: null, busy: false };

  // Opens the dialog: `fields` [{name, label, type, required, options, hint}], `run(values)`
  // does the work (rejecting keeps the dialog open with the error).
  function ask(opts) {
    const dlg = $('#desk-dialog');
    dialog.opener = document.activeElement;
    dialog.fallback = opts.fallback || null;
    dialog.run = opts.run;
    dialog.after = null;
    $('#dialog-title').textContent = opts.title;
    $('#dialog-desc').textContent = opts.desc || '';
    $('#dialog-error').textContent = '';
    const confirm = $('#dialog-confirm');
    confirm.textContent = opts.confirm || 'Conferma';
    confirm.className = 'btn ' + (opts.danger ? 'btn-danger' : 'btn-primary');
    const box = $('#dialog-fields');
    clear(box);
    for (const f of opts.fields || []) {
      const id = 'dlg-' + f.name;
      const hintId = f.hint ? id + '-hint' : null;
      const attrs = { id, name: f.name, 'aria-describedby': hintId, required: !!f.required, autocomplete: 'off' };
      let input;
      if (f.type === 'textarea') input = h('textarea', Object.assign(attrs, { rows: 3 }));
      else if (f.type === 'select') input = h('select', attrs, ...(f.options || []).map(([v, l]) => h('option', { value: v }, l)));
      else input = h('input', Object.assign(attrs, { type: f.type || 'text', spellcheck: 'false' }));
      if (f.value) input.value = f.value;
      box.append(h('div', { class: 'field' },
        h('label', { for: id }, f.label + (f.required ? '' : ' (facoltativo)')),
        input,
        f.hint ? h('p', { id: hintId, class: 'hint' }, f.hint) : null));
    }
    dlg.showModal();
    const first = box.querySelector('input, textarea, select');
    (first || $('#dialog-cancel')).focus();
  }

  function closeDialog() {
    const dlg = $('#desk-dialog');
    if (dlg.open) dlg.close();
  }

  function onDialogClose() {
    dialog.run = null;
    dialog.busy = false;
    // Where the work says to go on (a link to the ticket, the list's heading), else back where
    // the user was, else the fallback when that button went away with its row.
    const live = (el) => el && document.contains(el) && !el.disabled && !el.closest('[hidden]');
    const target = [dialog.after, dialog.opener, dialog.fallback && $(dialog.fallback)].find(live);
    if (target) target.focus();
    dialog.opener = null;
    dialog.after = null;
  }

  async function onDialogSubmit(ev) {
    ev.preventDefault();
    if (dialog.busy || !dialog.run) return;
    const err = $('#dialog-error');
    err.textContent = '';
    const values = {};
    for (const el of document.querySelectorAll('#dialog-fields [name]')) {
      el.removeAttribute('aria-invalid');
      values[el.name] = el.value.trim();
    }
    for (const el of document.querySelectorAll('#dialog-fields [required]')) {
      if (!el.value.trim()) {
        el.setAttribute('aria-invalid', 'true');
        const lab = document.querySelector('label[for="' + el.id + '"]');
        err.textContent = 'Compila il campo «' + (lab ? lab.textContent : el.name) + '».';
        el.focus();
        return;
      }
    }
    const confirm = $('#dialog-confirm');
    dialog.busy = true;
    confirm.disabled = true;
    confirm.setAttribute('aria-busy', 'true');
    try {
      dialog.after = (await dialog.run(values)) || null;
      closeDialog();
    } catch (e) {
      if (e && e.status === 401) {
        closeDialog();
        return;
      }
      err.textContent = 'Non riuscito: ' + (e && e.status ? errorText(e) : String(e && e.message ? e.message : e));
      say('Azione non riuscita: ' + err.textContent, 'error');
    } finally {
      dialog.busy = false;
      confirm.disabled = false;
      confirm.removeAttribute('aria-busy');
    }
  }

  // ---- work queues ------------------------------------------------------------------------
  const QUEUES = {
    uncertain: {
      key: 'uncertain',
      title: 'Messaggi con esito incerto',
      lead: 'Il gestore non ha detto se il messaggio è arrivato: il sistema lo tiene fermo per non mandare doppioni. ' +
        'Invialo di nuovo (stesso identificativo, il gestore riconosce il doppione), segnalo come consegnato se il ' +
        'cittadino lo conferma, oppure rinuncia e passa al canale successivo.',
      empty: 'Nessun messaggio con esito incerto.',
      path: '/queues/uncertain',
    },
    unreachable: {
      key: 'unreachable',
      title: 'Cittadini non raggiungibili',
      lead: 'Avvisi che non sono arrivati su nessun canale. Registra un contatto avvenuto per telefono o allo ' +
        'sportello, oppure correggi il recapito: gli avvisi dovuti partono verso quello nuovo.',
      empty: 'Nessun cittadino da raggiungere.',
      path: '/queues/unreachable',
    },
    unmatched: {
      key: 'unmatched',
      title: 'Risposte non abbinate',
      lead: 'Risposte dei cittadini che non indicano una pratica. Abbinale alla pratica giusta (se attende ' +
        'un\'integrazione, il termine riprende) oppure archiviale con una nota.',
      empty: 'Nessuna risposta da abbinare.',
      path: '/queues/unmatched',
    },
    'opt-outs': {
      key: 'opt_outs',
      title: 'Numeri con gli SMS disattivati',
      lead: 'Cellulari che hanno chiesto di non ricevere più SMS. Su richiesta del cittadino puoi riattivarli: ' +
        'scrivi il numero come te lo dice.',
      empty: 'Nessun numero con gli SMS disattivati.',
      path: '/queues/opt-outs',
    },
  };

  const queue = { name: null, cursors: [], next: null, filter: '', seq: 0, items: [] };

  function openQueues(parts, moveFocus) {
    showView('queues');
    const name = parts[1] || '';
    for (const a of document.querySelectorAll('[data-queue-nav]')) {
      if (a.dataset.queueNav === name) a.setAttribute('aria-current', 'page');
      else a.removeAttribute('aria-current');
    }
    const q = QUEUES[name];
    $('#queue-overview').hidden = !!q;
    $('#queues-lead').hidden = !!q;
    $('#queue-page').hidden = !q;
    if (!q) {
      if (name) {
        location.hash = '#/queues';
        return;
      }
      queue.name = null;
      $('#queues-title').textContent = 'Code di lavoro';
      document.title = 'Code di lavoro · Messo';
      renderOverview();
      if (moveFocus) focusHeading('#queues-title');
      return;
    }
    const changed = queue.name !== name;
    queue.name = name;
    $('#queues-title').textContent = q.title;
    document.title = q.title + ' · Messo';
    $('#queue-lead').textContent = q.lead;
    $('#queue-readonly').hidden = can('editor');
    $('#optout-forms').hidden = name !== 'opt-outs';
    $('#optout-lift').hidden = !can('editor');
    if (changed) {
      $('#queue-done').hidden = true;
      clear($('#queue-done'));
      queue.filter = '';
      $('#optout-number').value = '';
    }
    queue.cursors = [];
    if (moveFocus) focusHeading('#queues-title');
    loadQueue(null);
  }

  function renderOverview() {
    const ul = $('#queue-cards');
    clear(ul);
    const c = counts.last || {};
    for (const [name, q] of Object.entries(QUEUES)) {
      const n = c[q.key];
      ul.append(h('li', { class: 'card queue-card', dataset: { queue: name } },
        h('h2', null, h('a', { href: '#/queues/' + name }, q.title + (n == null ? '' : ' (' + n + ')'))),
        h('p', null, q.lead)));
    }
  }

  async function loadQueue(after) {
    const q = QUEUES[queue.name];
    if (!q) return;
    const name = queue.name;
    const seq = ++queue.seq;
    const params = new URLSearchParams();
    params.set('limit', String(QUEUE_LIMIT));
    if (after) params.set('after', after);
    if (name === 'opt-outs' && queue.filter) params.set('number', queue.filter);
    const box = $('#queue-box');
    box.setAttribute('aria-busy', 'true');
    let r;
    try {
      r = await api('GET', q.path + '?' + params.toString());
    } catch (e) {
      box.removeAttribute('aria-busy');
      if (seq !== queue.seq || e.status === 401) return;
      clear(box);
      $('#queue-empty').textContent = 'Impossibile leggere la coda: ' + errorText(e);
      $('#queue-empty').hidden = false;
      say('Impossibile leggere la coda: ' + errorText(e), 'error');
      return;
    }
    if (seq !== queue.seq || name !== queue.name) return;
    box.removeAttribute('aria-busy');
    queue.items = (r && r.items) || [];
    queue.next = (r && r.next) || null;
    renderQueue(name, queue.items);
    $('#btn-queue-next').hidden = !queue.next;
    $('#btn-queue-first').hidden = !queue.cursors.length;
  }

  function actionButton(text, name, item, extra) {
    return h('button', {
      type: 'button',
      class: 'btn btn-small ' + (extra || 'btn-secondary'),
      dataset: { queueAction: name, item: item.id != null ? item.id : '' },
      'aria-label': text + ': ' + itemName(item),
    }, text);
  }

  function itemName(item) {
    switch (queue.name) {
      case 'uncertain':
      case 'unreachable':
        return label(MESSAGE_KIND, item.kind) + ' via ' + label(CHANNEL, item.channel) + ', pratica ' + (item.number || '—');
      case 'unmatched':
        return 'risposta del ' + when(item.received_at) + ' da ' + (item.sender || 'mittente sconosciuto');
      default:
        return String(item.id);
    }
  }

  function renderQueue(name, items) {
    const box = $('#queue-box');
    clear(box);
    const q = QUEUES[name];
    const editor = can('editor');
    $('#queue-empty').textContent = queue.filter ? 'Il numero cercato non ha gli SMS disattivati.' : q.empty;
    $('#queue-empty').hidden = items.length > 0;
    if (!items.length) return;
    let head;
    let rows;
    if (name === 'uncertain') {
      head = ['Pratica', 'Messaggio', 'Quando', 'Tentativi e risposta del gestore'];
      rows = items.map((m) => ({
        data: { item: m.id, number: m.number || '' },
        cells: [ticketLink(m.number),
          h('span', null, label(MESSAGE_KIND, m.kind) + ' · ' + label(CHANNEL, m.channel), h('br'), h('span', { class: 'masked' }, m.address || '')),
          h('span', null, 'creato il ', timeEl(m.created_at), h('br'), 'ultimo tentativo il ', timeEl(m.updated_at)),
          [plural(m.attempts || 0, 'tentativo', 'tentativi'), m.provider, m.last_error].filter(Boolean).join(' · ')],
        actions: editor ? [actionButton('Invia di nuovo', 'resend', m, 'btn-primary'),
          actionButton('Segna come consegnato', 'mark-delivered', m), actionButton('Rinuncia e passa al canale successivo', 'give-up', m)] : null,
      }));
    } else if (name === 'unreachable') {
      head = ['Pratica', 'Messaggio', 'Canali provati', 'Creato', 'Ultimo errore'];
      rows = items.map((m) => ({
        data: { item: m.id, number: m.number || '' },
        cells: [ticketLink(m.number), label(MESSAGE_KIND, m.kind) + ' · ' + label(CHANNEL, m.channel),
          (m.tried || []).map((c) => label(CHANNEL, c)).join(', ') || '—', timeEl(m.created_at), m.last_error || '—'],
        actions: editor ? [actionButton('Contatto avvenuto', 'contact-made', m, 'btn-primary'), actionButton('Correggi recapito', 'contact', m)] : null,
      }));
    } else if (name === 'unmatched') {
      head = ['Ricevuta', 'Mittente', 'Testo', 'Allegati'];
      rows = items.map((r) => ({
        data: { item: r.id },
        cells: [h('span', null, timeEl(r.received_at), h('br'), 'via ' + label(ROUTE, r.route)),
          h('span', { class: 'masked' }, r.sender || '—'),
          h('div', null, r.subject ? h('strong', null, r.subject) : null, r.text ? h('p', { class: 'reply-text' }, r.text) : null,
            r.detail ? h('p', { class: 'hint' }, replyDetail(r.detail)) : null),
          (r.attachments || []).length ? h('ul', { class: 'attachments' }, ...(r.attachments || []).map((a) => h('li', null, a.name + ' (' + sizeText(a.size) + ')'))) : '—'],
        actions: editor ? [actionButton('Abbina a una pratica', 'attach', r, 'btn-primary'), actionButton('Archivia con nota', 'dismiss', r)] : null,
      }));
    } else {
      head = ['Numero', 'Parola chiave', 'Disattivati dal'];
      rows = items.map((o) => ({
        data: { number: o.number || '' },
        cells: [h('span', { class: 'masked' }, o.number || '—'), o.keyword || '—', timeEl(o.opted_out_at)],
      }));
    }
    const withActions = rows.some((r) => r.actions);
    box.append(h('table', { class: 'table table-compact desk-table', id: 'queue-table', dataset: { queue: name } },
      h('caption', { class: 'visually-hidden' }, q.title),
      h('thead', null, h('tr', null, ...head.map((c) => h('th', { scope: 'col' }, c)),
        withActions ? h('th', { scope: 'col' }, 'Azioni') : null)),
      h('tbody', null, ...rows.map((r) => h('tr', { dataset: r.data },
        h('th', { scope: 'row' }, r.cells[0]),
        ...r.cells.slice(1).map((c) => h('td', null, c)),
        withActions ? h('td', null, h('div', { class: 'row-actions' }, ...(r.actions || []))) : null)))));
  }

  function queueItem(id) {
    return queue.items.find((x) => String(x.id) === String(id));
  }

  // After an action: the status line says what happened, the list and the counts are read again.
  async function queueDone(message, link) {
    say(message, 'ok');
    const done = $('#queue-done');
    clear(done);
    done.append(message, link ? ' ' : null, link || null);
    done.hidden = false;
    await loadQueue(null);
    refreshCounts();
    return link || $('#queues-title');
  }

  function onQueueAction(btn) {
    const item = queueItem(btn.dataset.item);
    if (!item) return;
    const what = itemName(item);
    const msgPath = '/messages/' + encodeURIComponent(item.id);
    switch (btn.dataset.queueAction) {
      case 'resend':
        ask({
          title: 'Inviare di nuovo il messaggio?',
          desc: what + '. Parte di nuovo lo stesso messaggio, con lo stesso identificativo: se era già arrivato, ' +
            'il gestore riconosce il doppione.',
          fields: [{ name: 'reason', label: 'Motivo' }],
          confirm: 'Invia di nuovo',
          fallback: '#queues-title',
          run: async (v) => {
            const r = await api('POST', msgPath + '/resend', { reason: v.reason });
            return queueDone(r && r.already ? 'Il messaggio era già stato rimesso in invio.' : 'Messaggio rimesso in invio: ' + what + '.');
          },
        });
        break;
      case 'mark-delivered':
        ask({
          title: 'Segnare il messaggio come consegnato?',
          desc: what + '. Fallo solo se sai che il cittadino lo ha ricevuto: non verrà più inviato.',
          fields: [{ name: 'reason', label: 'Motivo', required: true, hint: 'Per esempio: «il cittadino conferma al telefono di averlo ricevuto».' }],
          confirm: 'Segna come consegnato',
          danger: true,
          fallback: '#queues-title',
          run: async (v) => {
            const r = await api('POST', msgPath + '/mark-delivered', { reason: v.reason });
            return queueDone(r && r.already ? 'Il messaggio era già segnato come consegnato.' : 'Messaggio segnato come consegnato: ' + what + '.');
          },
        });
        break;
      case 'give-up':
        ask({
          title: 'Rinunciare a questo invio?',
          desc: what + '. Il messaggio non verrà più inviato su questo canale: parte sul canale successivo previsto, ' +
            'o l\'ufficio viene avvisato se non ce ne sono altri.',
          fields: [{ name: 'reason', label: 'Motivo' }],
          confirm: 'Rinuncia e passa al canale successivo',
          danger: true,
          fallback: '#queues-title',
          run: async (v) => {
            const r = await api('POST', msgPath + '/give-up', { reason: v.reason });
            return queueDone(r && r.already ? 'L\'invio era già stato abbandonato.' : 'Invio abbandonato, si passa al canale successivo: ' + what + '.');
          },
        });
        break;
      case 'contact-made':
        ask({
          title: 'Registrare un contatto avvenuto?',
          desc: what + '. Il contatto diventa un evento della pratica e il messaggio esce dalla coda.',
          fields: [
            { name: 'channel', label: 'Come', type: 'select', required: true, options: [['phone', 'Per telefono'], ['desk', 'Allo sportello']] },
            { name: 'text', label: 'Cosa è stato detto', type: 'textarea', required: true },
          ],
          confirm: 'Registra il contatto',
          fallback: '#queues-title',
          run: async (v) => {
            const r = await api('POST', msgPath + '/contact-made', { channel: v.channel, text: v.text });
            return queueDone(r && r.already ? 'Il contatto era già registrato.' : 'Contatto registrato sulla pratica ' + item.number + '.',
              h('a', { href: ticketHash(item.number), id: 'queue-done-link' }, 'Apri la pratica ' + item.number));
          },
        });
        break;
      case 'contact':
        ask({
          title: 'Correggere il recapito del cittadino?',
          desc: 'Pratica ' + item.number + '. Indica solo ciò che cambia: gli avvisi che non sono arrivati partono verso il nuovo recapito.',
          fields: [
            { name: 'email', label: 'Nuova e-mail', type: 'email' },
            { name: 'mobile', label: 'Nuovo cellulare', type: 'tel' },
            { name: 'pec', label: 'Nuova PEC', type: 'email' },
            { name: 'reason', label: 'Motivo', required: true },
          ],
          confirm: 'Correggi il recapito',
          fallback: '#queues-title',
          run: async (v) => {
            const body = { reason: v.reason };
            for (const k of ['email', 'mobile', 'pec']) if (v[k]) body[k] = v[k];
            if (!body.email && !body.mobile && !body.pec) throw new Error('indica almeno un nuovo recapito.');
            await api('POST', ticketPath(item.number) + '/contact', body);
            return queueDone('Recapito corretto per la pratica ' + item.number + ': gli avvisi non arrivati ripartono.',
              h('a', { href: ticketHash(item.number), id: 'queue-done-link' }, 'Apri la pratica ' + item.number));
          },
        });
        break;
      case 'attach':
        ask({
          title: 'Abbinare la risposta a una pratica?',
          desc: 'La ' + what + ' viene registrata sulla pratica come una risposta abbinata: se la pratica attende ' +
            'un\'integrazione, il termine riprende.',
          fields: [
            { name: 'number', label: 'Numero della pratica', required: true, hint: 'Per esempio 2026/000123.' },
            { name: 'note', label: 'Nota', type: 'textarea' },
          ],
          confirm: 'Abbina',
          fallback: '#queues-title',
          run: async (v) => {
            const r = await api('POST', '/inbound/' + encodeURIComponent(item.id) + '/attach', { number: v.number, note: v.note });
            const number = (r && r.number) || v.number;
            const how = r && r.outcome === 'integration'
              ? 'come integrazione: il termine riprende'
              : 'come nota';
            return queueDone((r && r.already ? 'La risposta era già abbinata alla pratica ' : 'Risposta abbinata alla pratica ') + number + ' ' + how + '.',
              h('a', { href: ticketHash(number), id: 'queue-done-link' }, 'Apri la pratica ' + number));
          },
        });
        break;
      case 'dismiss':
        ask({
          title: 'Archiviare la risposta?',
          desc: 'La ' + what + ' esce dalla coda senza essere abbinata a una pratica.',
          fields: [{ name: 'note', label: 'Nota', type: 'textarea', required: true, hint: 'Perché non è una risposta a una pratica.' }],
          confirm: 'Archivia',
          danger: true,
          fallback: '#queues-title',
          run: async (v) => {
            const r = await api('POST', '/inbound/' + encodeURIComponent(item.id) + '/dismiss', { note: v.note });
            return queueDone(r && r.already ? 'La risposta era già archiviata.' : 'Risposta archiviata.');
          },
        });
        break;
      default:
        break;
    }
  }

  async function onOptOutFilter(ev) {
    ev.preventDefault();
    queue.filter = $('#optout-number').value.trim();
    queue.cursors = [];
    await withButton($('#btn-optout-filter'), () => loadQueue(null));
    say(queue.items.length ? 'Trovati ' + plural(queue.items.length, 'numero', 'numeri') + '.' : $('#queue-empty').textContent, 'info');
  }

  function onOptOutLift(ev) {
    ev.preventDefault();
    const number = $('#lift-number');
    const reason = $('#lift-reason');
    number.removeAttribute('aria-invalid');
    reason.removeAttribute('aria-invalid');
    if (!number.value.trim()) {
      number.setAttribute('aria-invalid', 'true');
      say('Scrivi il numero di cellulare da riattivare.', 'error');
      number.focus();
      return;
    }
    if (!reason.value.trim()) {
      reason.setAttribute('aria-invalid', 'true');
      say('Indica il motivo della riattivazione.', 'error');
      reason.focus();
      return;
    }
    const n = number.value.trim();
    ask({
      title: 'Riattivare gli SMS per ' + n + '?',
      desc: 'Il cittadino ha chiesto di ricevere di nuovo gli SMS. L\'operazione è registrata nel registro delle operazioni.',
      confirm: 'Revoca l\'opt-out',
      fallback: '#lift-number',
      run: async () => {
        const r = await api('POST', '/opt-outs/lift', { number: n, reason: reason.value.trim() });
        number.value = '';
        reason.value = '';
        return queueDone(r && r.already ? 'Gli SMS per ' + n + ' erano già riattivati.' : 'SMS riattivati per ' + n + '.');
      },
    });
  }

  async function onQueueNext() {
    if (!queue.next) return;
    queue.cursors.push(queue.next);
    await withButton($('#btn-queue-next'), () => loadQueue(queue.cursors[queue.cursors.length - 1]));
    focusHeading('#queues-title');
  }

  async function onQueueFirst() {
    queue.cursors = [];
    await withButton($('#btn-queue-first'), () => loadQueue(null));
    focusHeading('#queues-title');
  }

  // ---- leaving ----------------------------------------------------------------------------
  function forget() {
    closeDialog();
    counts.last = null;
    $('#nav-queues-count').textContent = '';
    for (const el of document.querySelectorAll('[data-count]')) el.textContent = '';
    $('#search-form').reset();
    $('#search-results').hidden = true;
    clear($('#search-table tbody'));
    clear($('#search-offices'));
    search.query = null;
    search.cursors = [];
    search.offices.clear();
    ticket.number = null;
    ticket.data = null;
    $('#ticket-body').hidden = true;
    for (const id of ['#ticket-meta', '#ticket-citizen', '#ticket-sla', '#ticket-events', '#ticket-messages',
      '#ticket-replies', '#ticket-links', '#ticket-audit', '#queue-box', '#queue-cards', '#queue-done']) clear($(id));
    $('#ticket-explain').textContent = '';
    for (const f of document.querySelectorAll('.action-form')) f.reset();
    queue.name = null;
    queue.items = [];
  }

  // ---- wiring -----------------------------------------------------------------------------
  function wire() {
    $('#search-form').addEventListener('submit', onSearch);
    $('#btn-search-next').addEventListener('click', onSearchNext);
    $('#btn-search-first').addEventListener('click', onSearchFirst);
    $('#btn-search-reset').addEventListener('click', onSearchReset);
    $('#btn-reveal').addEventListener('click', onReveal);
    $('#actions-forms').addEventListener('submit', onActionSubmit);
    $('#dialog-form').addEventListener('submit', onDialogSubmit);
    $('#dialog-cancel').addEventListener('click', closeDialog);
    $('#desk-dialog').addEventListener('close', onDialogClose);
    $('#optout-filter').addEventListener('submit', onOptOutFilter);
    $('#optout-lift').addEventListener('submit', onOptOutLift);
    $('#btn-queue-next').addEventListener('click', onQueueNext);
    $('#btn-queue-first').addEventListener('click', onQueueFirst);
    $('#queue-box').addEventListener('click', (ev) => {
      const btn = ev.target instanceof Element ? ev.target.closest('[data-queue-action]') : null;
      if (btn) onQueueAction(btn);
    });
  }

  wire();
  M.page('search', openSearch);
  M.page('ticket', openTicket);
  M.page('queues', openQueues);
  M.onRoute(refreshCounts);
  M.onForget(forget);
})();
