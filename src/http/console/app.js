// Messo admin console: a single page without framework or build step.
// Served under a CSP with script-src 'self': no inline scripts, no inline handlers, no eval.
// Every piece of server data is put into the page with textContent / attributes, never as HTML;
// the only HTML rendered is a template preview, inside an iframe sandboxed with no permissions.
'use strict';

(function () {
  const API = '/api/v1/admin';
  const PREVIEW_DEBOUNCE_MS = 300;
  const TZ = 'Europe/Rome';

  // ---- state ------------------------------------------------------------------------------
  const state = {
    user: null,          // {username, role, csrf}
    template: null,      // the detail of the template being edited
    key: null,           // {audience, kind, lang}
    previewTimer: null,
    previewSeq: 0,
    previewAbort: null,
    historyOpen: false,
  };

  const ROLE_RANK = { viewer: 0, editor: 1, admin: 2 };
  const ROLE_LABEL = { viewer: 'consultazione', editor: 'redazione', admin: 'amministrazione' };
  const AUDIENCE_LABEL = { cittadino: 'Messaggi ai cittadini', ufficio: 'Messaggi agli uffici', telefono: 'Risposte del servizio telefonico automatico' };
  const LANG_LABEL = { it: 'italiano', en: 'inglese' };
  const CHANNEL_LABEL = { email: 'e-mail', sms: 'SMS', io: 'app IO' };
  const VERSION_STATE = {
    live: 'in uso',
    proposed: 'proposta',
    retired: 'superata',
    withdrawn: 'ritirata',
  };
  const RISK_STATE = { warning: 'preavviso', breached: 'termine superato', paused: 'sospesa' };
  const PART_LABEL = {
    subject: 'Oggetto', text: 'Testo semplice', html: 'HTML', sms: 'SMS',
    io_subject: 'Oggetto per l\'app IO', io_markdown: 'Testo per l\'app IO', note: 'Nota',
  };
  const PARTS = ['subject', 'text', 'html', 'sms', 'io_subject', 'io_markdown', 'note'];

  // ---- small helpers ----------------------------------------------------------------------
  const $ = (sel) => document.querySelector(sel);

  // Builds an element: h('td', {class: 'x', dataset: {a: 'b'}}, 'text', child, ...).
  function h(tag, attrs, ...children) {
    const el = document.createElement(tag);
    if (attrs) {
      for (const [k, v] of Object.entries(attrs)) {
        if (v === null || v === undefined || v === false) continue;
        if (k === 'dataset') {
          for (const [dk, dv] of Object.entries(v)) el.dataset[dk] = String(dv);
        } else if (k === 'class') {
          el.className = v;
        } else if (k === 'text') {
          el.textContent = v;
        } else if (v === true) {
          el.setAttribute(k, '');
        } else {
          el.setAttribute(k, String(v));
        }
      }
    }
    for (const c of children) {
      if (c === null || c === undefined || c === false) continue;
      el.append(c instanceof Node ? c : String(c));
    }
    return el;
  }

  function clear(el) {
    while (el.firstChild) el.removeChild(el.firstChild);
  }

  const dateFmt = new Intl.DateTimeFormat('it-IT', {
    timeZone: TZ,
    weekday: 'short',
    day: 'numeric',
    month: 'long',
    year: 'numeric',
    hour: '2-digit',
    minute: '2-digit',
  });

  // An RFC 3339 instant written in Italian, Rome time, in a <time> element.
  function timeEl(iso) {
    if (!iso) return document.createTextNode('—');
    const d = new Date(iso);
    if (Number.isNaN(d.getTime())) return document.createTextNode(iso);
    return h('time', { datetime: iso }, dateFmt.format(d));
  }

  function plural(n, one, many) {
    return n + ' ' + (n === 1 ? one : many);
  }

  // Seconds as "2 giorni 3 ore", "3 ore 10 minuti", "12 minuti".
  function duration(s) {
    s = Math.abs(Math.round(s));
    const days = Math.floor(s / 86400);
    const hours = Math.floor((s % 86400) / 3600);
    const minutes = Math.floor((s % 3600) / 60);
    const out = [];
    if (days) out.push(plural(days, 'giorno', 'giorni'));
    if (hours) out.push(plural(hours, 'ora', 'ore'));
    if (!days && (minutes || !hours)) out.push(plural(minutes, 'minuto', 'minuti'));
    return out.join(' ');
  }

  function capitalize(s) {
    return s ? s.charAt(0).toUpperCase() + s.slice(1) : s;
  }

  function templatePath(key) {
    return [key.audience, key.kind, key.lang].map(encodeURIComponent).join('/');
  }

  function can(role) {
    return !!state.user && (ROLE_RANK[state.user.role] ?? -1) >= ROLE_RANK[role];
  }

  // ---- status line ------------------------------------------------------------------------
  function say(message, kind) {
    const box = $('#status');
    box.className = 'status ' + (kind === 'error' ? 'status-error' : kind === 'ok' ? 'status-ok' : 'status-info');
    // Replace the text (not append) so that screen readers announce every message.
    box.textContent = message;
  }

  // ---- HTTP -------------------------------------------------------------------------------
  class ApiError extends Error {
    constructor(status, body, headers) {
      super(problemText(status, body));
      this.status = status;
      this.body = body;
      this.headers = headers;
    }
  }

  function problemText(status, body) {
    if (body && typeof body === 'object') {
      if (body.detail) return String(body.detail);
      if (body.title) return String(body.title);
    }
    if (status === 0) return 'Il server non risponde: controlla la connessione.';
    return 'Errore ' + status + ' dal server.';
  }

  // Calls the admin API; resolves to the parsed body (or null), rejects with ApiError.
  async function api(method, path, body, opts) {
    const headers = { Accept: 'application/json, application/problem+json' };
    if (method !== 'GET' && method !== 'HEAD') {
      if (state.user && state.user.csrf) headers['X-CSRF-Token'] = state.user.csrf;
    }
    if (opts && opts.headers) Object.assign(headers, opts.headers);
    const init = { method, headers, credentials: 'same-origin', cache: 'no-store' };
    if (body !== undefined) {
      headers['Content-Type'] = 'application/json';
      init.body = JSON.stringify(body);
    }
    if (opts && opts.signal) init.signal = opts.signal;
    let res;
    try {
      res = await fetch(((opts && opts.root) || API) + path, init);
    } catch (e) {
      if (e && e.name === 'AbortError') throw e;
      throw new ApiError(0, null, new Headers());
    }
    let data = null;
    const text = await res.text();
    if (text) {
      try {
        data = JSON.parse(text);
      } catch (_) {
        data = { detail: text.slice(0, 300) };
      }
    }
    if (!res.ok) {
      const err = new ApiError(res.status, data, res.headers);
      // A lost session sends the user back to the log-in form (not for the log-in itself).
      if (res.status === 401 && path !== '/login' && path !== '/me') {
        sessionLost();
      }
      throw err;
    }
    return data;
  }

  function sessionLost() {
    if (!state.user) return;
    if (location.hash && location.hash !== '#/login') sessionStorage.setItem('messo-after-login', location.hash);
    state.user = null;
    forgetData();
    showSession();
    say('La sessione è scaduta: accedi di nuovo.', 'error');
    if (location.hash !== '#/login') location.hash = '#/login';
  }

  // ---- session ----------------------------------------------------------------------------
  function showSession() {
    const logged = !!state.user;
    $('#session-box').hidden = !logged;
    $('#site-nav').hidden = !logged;
    $('#user-info').textContent = logged
      ? state.user.username + ' · ' + (ROLE_LABEL[state.user.role] || state.user.role)
      : '';
  }

  async function onLogin(ev) {
    ev.preventDefault();
    const user = $('#login-username');
    const pass = $('#login-password');
    const err = $('#login-error');
    err.textContent = '';
    user.removeAttribute('aria-invalid');
    pass.removeAttribute('aria-invalid');
    if (!user.value.trim() || !pass.value) {
      err.textContent = 'Inserisci nome utente e password.';
      (user.value.trim() ? pass : user).setAttribute('aria-invalid', 'true');
      return;
    }
    const btn = $('#login-submit');
    btn.disabled = true;
    try {
      const me = await api('POST', '/login', { username: user.value.trim(), password: pass.value });
      state.user = me;
      pass.value = '';
      showSession();
      say('Accesso eseguito come ' + me.username + '.', 'ok');
      const target = sessionStorage.getItem('messo-after-login');
      sessionStorage.removeItem('messo-after-login');
      const next = target && target !== '#/login' ? target : HOME;
      if (location.hash === next) route();
      else location.hash = next;
    } catch (e) {
      let msg = e.message;
      if (e.status === 429) {
        const after = e.headers && e.headers.get('Retry-After');
        if (after && /^\d+$/.test(after) && !/riprov/i.test(msg)) msg += ' Riprova tra ' + plural(Number(after), 'secondo', 'secondi') + '.';
      } else if (e.status === 401) {
        pass.setAttribute('aria-invalid', 'true');
      }
      err.textContent = msg;
      say('Accesso non riuscito: ' + msg, 'error');
      pass.focus();
    } finally {
      btn.disabled = false;
    }
  }

  async function onLogout() {
    try {
      await api('POST', '/logout');
      say('Sei uscito dalla console.', 'ok');
    } catch (e) {
      say('Uscita non riuscita: ' + e.message, 'error');
    }
    state.user = null;
    forgetData();
    showSession();
    if (location.hash === '#/login') route();
    else location.hash = '#/login';
  }

  // Removes what the last user saw, so that the next one never sees it (nor a test finds it).
  function forgetData() {
    cancelPreview();
    state.template = null;
    state.key = null;
    state.historyOpen = false;
    clear($('#templates-list'));
    clear($('#at-risk-table tbody'));
    clear($('#history-table tbody'));
    clear($('#proposals-list'));
    clear($('#editor-meta'));
    clear($('#validate-result'));
    $('#history').hidden = true;
    $('#validate-result').hidden = true;
    for (const id of ['#compliance-box', '#ontime-box', '#breaches-box', '#times-box', '#criticalities-box']) clear($(id));
    $('#monitoring-report').hidden = true;
    $('#monitoring-subtitle').textContent = '';
    mon.offices.clear();
    fillOffices('');
    fillFields(null);
    $('#field-note').value = '';
    $('#preview-ticket').value = '';
    $('#test-to').value = '';
    clearErrors();
    resetPreview();
    for (const f of hooks.forget) f();
  }

  // ---- routing ----------------------------------------------------------------------------
  // Shows the view `name` (the section #view-NAME) and marks its navigation item, `nav` when
  // the view belongs to another item's section (the editor to the templates, a ticket to the
  // search).
  function showView(name, nav) {
    for (const v of document.querySelectorAll('main > .view')) v.hidden = v.id !== 'view-' + name;
    const item = nav || (name === 'editor' ? 'templates' : name);
    for (const a of document.querySelectorAll('[data-nav]')) {
      if (a.dataset.nav === item) a.setAttribute('aria-current', 'page');
      else a.removeAttribute('aria-current');
    }
  }

  // Pages added by other scripts (desk.js): the first part of the route → open(parts, moveFocus);
  // `hooks.route` runs on every page a signed-in user opens, `hooks.forget` when the user leaves.
  const pages = new Map();
  const hooks = { route: [], forget: [] };

  function focusHeading(id) {
    const el = $(id);
    if (el) el.focus({ preventScroll: false });
  }

  let firstRoute = true;

  // Where a signed-in user lands: the desk's search, the page an officer answering the phone
  // needs first.
  const HOME = '#/search';

  function route() {
    const hash = location.hash || HOME;
    const parts = hash.replace(/^#\/?/, '').split('/').map(decodeURIComponent);
    // Focus the heading on navigation, but not on the first load (keep the skip link first).
    const moveFocus = !firstRoute;
    firstRoute = false;
    if (!state.user) {
      if (parts[0] !== 'login' && hash) sessionStorage.setItem('messo-after-login', hash);
      showView('login');
      document.title = 'Accesso · Messo';
      $('#login-username').focus();
      return;
    }
    cancelPreview();
    for (const f of hooks.route) f(parts);
    if (parts[0] === 'login' || parts[0] === '') {
      location.hash = HOME;
    } else if (pages.has(parts[0])) {
      pages.get(parts[0])(parts, moveFocus);
    } else if (parts[0] === 'templates' && parts.length === 1) {
      showView('templates');
      document.title = 'Modelli dei messaggi · Messo';
      if (moveFocus) focusHeading('#templates-title');
      loadTemplates();
    } else if (parts[0] === 'templates' && parts.length === 4) {
      showView('editor');
      openEditor({ audience: parts[1], kind: parts[2], lang: parts[3] }, moveFocus);
    } else if (parts[0] === 'at-risk') {
      showView('at-risk');
      document.title = 'Pratiche a rischio · Messo';
      if (moveFocus) focusHeading('#at-risk-title');
      loadAtRisk();
    } else if (parts[0] === 'monitoring') {
      openMonitoring(moveFocus);
    } else {
      location.hash = HOME;
    }
  }

  // ---- template list ----------------------------------------------------------------------
  async function loadTemplates() {
    const box = $('#templates-list');
    box.setAttribute('aria-busy', 'true');
    let list;
    try {
      list = await api('GET', '/templates');
    } catch (e) {
      box.removeAttribute('aria-busy');
      if (e.status !== 401) say('Impossibile leggere i modelli: ' + e.message, 'error');
      return;
    }
    clear(box);
    box.removeAttribute('aria-busy');
    const groups = new Map();
    for (const t of list || []) {
      if (!groups.has(t.audience)) groups.set(t.audience, []);
      groups.get(t.audience).push(t);
    }
    if (!groups.size) {
      box.append(h('p', { class: 'notice' }, 'Nessun modello disponibile.'));
      return;
    }
    const order = ['cittadino', 'ufficio', ...[...groups.keys()].filter((a) => a !== 'cittadino' && a !== 'ufficio')];
    for (const audience of order) {
      const items = groups.get(audience);
      if (!items) continue;
      items.sort((a, b) => a.kind.localeCompare(b.kind) || a.lang.localeCompare(b.lang));
      const headId = 'audience-' + audience;
      const tbody = h('tbody');
      for (const t of items) {
        const key = t.audience + '/' + t.kind + '/' + t.lang;
        const live = t.live_version
          ? h('span', null, 'v' + t.live_version, t.live_since ? h('span', { class: 'muted' }, ' dal ', timeEl(t.live_since)) : null,
            t.live_by ? h('span', { class: 'muted' }, ' (' + t.live_by + ')') : null)
          : h('span', { class: 'muted' }, 'nessuna');
        const proposed = t.proposed
          ? h('span', { class: 'badge badge-warn' }, plural(t.proposed, 'proposta', 'proposte'))
          : h('span', { class: 'muted' }, 'nessuna');
        tbody.append(h('tr', { dataset: { templateRow: key } },
          h('th', { scope: 'row' }, h('a', { href: '#/templates/' + templatePath(t), dataset: { template: key } }, t.kind)),
          h('td', null, LANG_LABEL[t.lang] || t.lang),
          h('td', null, t.description || ''),
          h('td', null, live),
          h('td', null, proposed),
          h('td', null, (t.channels || []).map((c) => CHANNEL_LABEL[c] || c).join(', '))));
      }
      box.append(h('section', { class: 'audience', 'aria-labelledby': headId },
        h('h2', { id: headId }, AUDIENCE_LABEL[audience] || capitalize(audience)),
        h('div', { class: 'table-wrap' },
          h('table', { class: 'table', id: 'templates-' + audience },
            h('thead', null, h('tr', null,
              h('th', { scope: 'col' }, 'Tipo'),
              h('th', { scope: 'col' }, 'Lingua'),
              h('th', { scope: 'col' }, 'Descrizione'),
              h('th', { scope: 'col' }, 'Versione in uso'),
              h('th', { scope: 'col' }, 'Proposte'),
              h('th', { scope: 'col' }, 'Canali'))),
            tbody))));
    }
  }

  // ---- editor -----------------------------------------------------------------------------
  function basePath() {
    return '/templates/' + templatePath(state.key);
  }

  function hasPart(part) {
    return !$('#group-' + part).hidden;
  }

  function content() {
    return {
      subject: $('#field-subject').value,
      text: $('#field-text').value,
      html: hasPart('html') ? $('#field-html').value : null,
      sms: hasPart('sms') ? $('#field-sms').value : null,
      io_subject: hasPart('io_subject') ? $('#field-io_subject').value : null,
      io_markdown: hasPart('io_markdown') ? $('#field-io_markdown').value : null,
    };
  }

  function fillFields(v) {
    $('#field-subject').value = v ? v.subject || '' : '';
    $('#field-text').value = v ? v.text || '' : '';
    $('#field-html').value = v && v.html != null ? v.html : '';
    $('#field-sms').value = v && v.sms != null ? v.sms : '';
    $('#field-io_subject').value = v && v.io_subject != null ? v.io_subject : '';
    $('#field-io_markdown').value = v && v.io_markdown != null ? v.io_markdown : '';
  }

  async function openEditor(key, moveFocus) {
    state.key = key;
    state.template = null;
    const label = key.audience + '/' + key.kind + '/' + key.lang;
    $('#editor-title').textContent = 'Modello ' + label;
    document.title = label + ' · Messo';
    clear($('#editor-meta'));
    clearErrors();
    resetPreview();
    $('#validate-result').hidden = true;
    $('#history').hidden = true;
    state.historyOpen = false;
    $('#btn-history').setAttribute('aria-expanded', 'false');
    $('#field-note').value = '';
    let t;
    try {
      t = await api('GET', basePath());
    } catch (e) {
      if (e.status !== 401) say('Impossibile aprire il modello ' + label + ': ' + e.message, 'error');
      return;
    }
    // The user may have navigated elsewhere meanwhile.
    if (state.key !== key) return;
    applyTemplate(t, true);
    if (moveFocus) focusHeading('#editor-title');
    schedulePreview(0);
  }

  // Shows a template's detail; `fill` also replaces the editor's fields with the live version.
  function applyTemplate(t, fill) {
    state.template = t;
    const live = t.live || null;
    const source = live || (t.proposed && t.proposed[0]) || null;
    $('#editor-title').textContent = 'Modello ' + t.audience + '/' + t.kind + '/' + t.lang;

    const meta = $('#editor-meta');
    clear(meta);
    const row = (term, ...desc) => meta.append(h('div', null, h('dt', null, term), h('dd', null, ...desc)));
    row('Descrizione', t.description || '—');
    row('Lingua', LANG_LABEL[t.lang] || t.lang);
    row('Versione in uso', live
      ? h('span', null, 'v' + live.version + ' · pubblicata da ' + (live.published_by || live.author || '—') + ' ', timeEl(live.published_at || live.created_at))
      : 'nessuna');
    row('Variabili', (t.variables || []).length ? h('code', null, (t.variables || []).join(', ')) : '—');

    // A telephone prompt: its subject is the prompt's title, its text the words spoken.
    const spoken = t.audience === 'telefono';
    $('label[for="field-subject"]').textContent = spoken ? 'Titolo' : 'Oggetto';
    $('label[for="field-text"]').textContent = spoken ? 'Testo parlato (testo semplice, senza simboli né indirizzi web)' : 'Testo semplice';
    $('#preview-text-title').textContent = spoken ? 'Testo che sarà pronunciato' : 'Testo semplice';
    $('#group-html').hidden = !(source && source.html != null);
    $('#group-sms').hidden = !(source && source.sms != null);
    $('#preview-html-group').hidden = $('#group-html').hidden;
    $('#preview-sms-group').hidden = $('#group-sms').hidden;
    // The app IO's two parts come together.
    const io = !!(source && source.io_subject != null && source.io_markdown != null);
    $('#group-io_subject').hidden = !io;
    $('#group-io_markdown').hidden = !io;
    $('#preview-io-group').hidden = !io;
    const smsOption = $('#test-channel option[value="sms"]');
    smsOption.disabled = $('#group-sms').hidden;
    if (smsOption.disabled && $('#test-channel').value === 'sms') $('#test-channel').value = 'email';
    if (fill) fillFields(source);

    // Samples.
    const sel = $('#preview-sample');
    const previous = sel.value;
    clear(sel);
    (t.samples || []).forEach((s, i) => {
      const hint = s && typeof s === 'object' && s.number ? ' · ' + s.number : '';
      sel.append(h('option', { value: String(i) }, 'Esempio ' + (i + 1) + hint));
    });
    if (previous && Number(previous) < (t.samples || []).length) sel.value = previous;
    sel.disabled = !(t.samples || []).length;

    // Permissions.
    const editor = can('editor');
    $('#editor-readonly').hidden = editor;
    for (const id of ['#field-subject', '#field-text', '#field-html', '#field-sms',
      '#field-io_subject', '#field-io_markdown', '#field-note']) {
      $(id).readOnly = !editor;
    }
    for (const id of ['#btn-validate', '#btn-save', '#btn-test-send']) $(id).disabled = !editor;
    $('#publish-hint').hidden = can('admin');

    renderProposals(t.proposed || []);
  }

  function renderProposals(list) {
    const box = $('#proposals-list');
    clear(box);
    if (!list.length) {
      box.append(h('p', { class: 'muted' }, 'Nessuna proposta in attesa.'));
      return;
    }
    const ul = h('ul', { class: 'proposals' });
    for (const v of list) {
      ul.append(h('li', { dataset: { version: v.version } },
        h('div', null,
          h('strong', null, 'Versione ' + v.version),
          ' · ' + (v.author || '—') + ' · ', timeEl(v.created_at),
          v.note ? h('p', { class: 'note' }, v.note) : null),
        h('div', { class: 'actions' },
          h('button', { type: 'button', class: 'btn btn-secondary', dataset: { load: v.version } }, 'Apri nell\'editor'),
          h('button', {
            type: 'button',
            class: 'btn btn-primary',
            dataset: { publish: v.version },
            disabled: !can('admin'),
            'aria-describedby': can('admin') ? null : 'publish-hint',
          }, 'Pubblica'))));
    }
    box.append(ul);
  }

  function findVersion(n) {
    const t = state.template;
    if (!t) return null;
    if (t.live && t.live.version === n) return t.live;
    return (t.proposed || []).find((v) => v.version === n) || null;
  }

  // ---- errors -----------------------------------------------------------------------------
  function clearErrors() {
    const box = $('#errors');
    clear(box);
    box.hidden = true;
    for (const p of PARTS) {
      clear($('#error-' + p));
      $('#field-' + p).removeAttribute('aria-invalid');
      $('#group-' + p).classList.remove('has-error');
    }
  }

  function errorLine(e) {
    const where = [];
    if (e.line != null) where.push('riga ' + e.line + (e.column != null ? ', colonna ' + e.column : ''));
    else if (e.column != null) where.push('colonna ' + e.column);
    if (e.sample != null) where.push('esempio ' + (e.sample + 1));
    return (where.length ? where.join(', ') + ': ' : '') + (e.message || 'errore');
  }

  // Shows the 422 errors next to their fields and in the summary; returns how many.
  function showErrors(errors, heading) {
    clearErrors();
    errors = Array.isArray(errors) ? errors : [];
    if (!errors.length) return 0;
    const box = $('#errors');
    const ul = h('ul');
    for (const e of errors) {
      const part = PARTS.includes(e.part) ? e.part : null;
      const line = errorLine(e);
      if (part) {
        $('#error-' + part).append(h('li', { dataset: { part, line: e.line ?? '', column: e.column ?? '' } }, line));
        $('#field-' + part).setAttribute('aria-invalid', 'true');
        $('#group-' + part).classList.add('has-error');
        ul.append(h('li', null, h('a', { href: '#field-' + part, dataset: { focus: 'field-' + part } }, PART_LABEL[part]), ': ' + line));
      } else {
        ul.append(h('li', null, (e.part ? e.part + ': ' : '') + line));
      }
    }
    box.append(h('p', { class: 'errors-title' }, heading || 'Il modello contiene errori:'), ul);
    box.hidden = false;
    return errors.length;
  }

  // ---- preview ----------------------------------------------------------------------------
  function resetPreview() {
    $('#preview-subject').textContent = '';
    $('#preview-text').textContent = '';
    $('#preview-html').srcdoc = '';
    $('#preview-sms').textContent = '';
    $('#sms-counter').textContent = '';
    $('#sms-counter').classList.remove('over');
    clear($('#sms-costly'));
    $('#preview-io-subject').textContent = '';
    $('#preview-io-counter').textContent = '';
    $('#preview-io-markdown').textContent = '';
    $('#preview-io').srcdoc = '';
    $('#preview-state').textContent = '';
    $('#preview-ticket').removeAttribute('aria-invalid');
  }

  function cancelPreview() {
    if (state.previewTimer) clearTimeout(state.previewTimer);
    state.previewTimer = null;
    if (state.previewAbort) state.previewAbort.abort();
    state.previewAbort = null;
  }

  function schedulePreview(delay) {
    if (!state.template || !can('editor')) return;
    cancelPreview();
    $('#preview-state').textContent = 'Anteprima in aggiornamento…';
    state.previewTimer = setTimeout(runPreview, delay === undefined ? PREVIEW_DEBOUNCE_MS : delay);
  }

  function previewBody() {
    const body = content();
    const ticket = $('#preview-ticket').value.trim();
    if (ticket) body.ticket = ticket;
    else body.sample = Number($('#preview-sample').value || 0);
    return body;
  }

  async function runPreview() {
    state.previewTimer = null;
    const seq = ++state.previewSeq;
    const abort = new AbortController();
    state.previewAbort = abort;
    const key = state.key;
    let p;
    try {
      p = await api('POST', basePath() + '/preview', previewBody(), { signal: abort.signal });
    } catch (e) {
      if (e && e.name === 'AbortError') return;
      if (seq !== state.previewSeq || key !== state.key) return;
      if (e.status === 422) {
        const n = showErrors(e.body && e.body.errors, 'L\'anteprima non è possibile:');
        $('#preview-state').textContent = 'Anteprima non aggiornata: ' + plural(n, 'errore', 'errori') + '.';
        say('Anteprima non aggiornata: ' + plural(n, 'errore', 'errori') + ' nel modello.', 'error');
      } else if (e.status === 404 && $('#preview-ticket').value.trim()) {
        $('#preview-ticket').setAttribute('aria-invalid', 'true');
        $('#preview-state').textContent = 'Pratica non trovata: ' + e.message;
        say('Anteprima: ' + e.message, 'error');
      } else if (e.status !== 401) {
        $('#preview-state').textContent = 'Anteprima non disponibile: ' + e.message;
        say('Anteprima non disponibile: ' + e.message, 'error');
      }
      return;
    }
    if (seq !== state.previewSeq || key !== state.key) return;
    state.previewAbort = null;
    clearErrors();
    $('#preview-ticket').removeAttribute('aria-invalid');
    $('#preview-state').textContent = 'Anteprima aggiornata.';
    renderPreview(p);
  }

  function renderPreview(p) {
    $('#preview-subject').textContent = p.subject || '';
    $('#preview-text').textContent = p.text || '';
    const frame = $('#preview-html');
    // The sandbox attribute is set in the page and never changed: no scripts, opaque origin.
    frame.setAttribute('sandbox', '');
    frame.srcdoc = p.html != null ? p.html : '';
    renderSms(p.sms);
    renderIo(p.io);
  }

  // The app IO's message: its subject, the Markdown as the app shows it (HTML of the app's
  // subset, made by the server and shown in a sandboxed frame like the e-mail) and as sent.
  function renderIo(io) {
    if (!io) {
      $('#preview-io-subject').textContent = '';
      $('#preview-io-counter').textContent = '';
      $('#preview-io-markdown').textContent = '';
      $('#preview-io').srcdoc = '';
      return;
    }
    $('#preview-io-subject').textContent = io.subject || '';
    $('#preview-io-counter').textContent = 'Oggetto: ' + plural([...(io.subject || '')].length, 'carattere', 'caratteri') +
      ' · testo: ' + plural([...(io.markdown || '')].length, 'carattere', 'caratteri');
    $('#preview-io-markdown').textContent = io.markdown || '';
    const frame = $('#preview-io');
    frame.setAttribute('sandbox', '');
    frame.srcdoc = '<!DOCTYPE html><html lang="' + (state.key ? state.key.lang : 'it') +
      '"><head><meta charset="utf-8"></head><body style="font-family:sans-serif;line-height:1.5;">' +
      (io.html || '') + '</body></html>';
  }

  function renderSms(sms) {
    const counter = $('#sms-counter');
    const costly = $('#sms-costly');
    clear(costly);
    if (!sms) {
      $('#preview-sms').textContent = '';
      counter.textContent = '';
      counter.classList.remove('over');
      return;
    }
    $('#preview-sms').textContent = sms.text || '';
    const enc = sms.encoding === 'ucs-2' ? 'UCS-2' : 'GSM-7';
    const over = sms.max_parts != null && sms.parts > sms.max_parts;
    let line = plural(sms.units, 'carattere', 'caratteri') + ' · ' + plural(sms.parts, 'parte', 'parti') +
      ' (' + enc + ') · max ' + sms.max_parts;
    if (over) line += ' · troppo lungo: supera il massimo di ' + plural(sms.max_parts, 'parte', 'parti');
    else if (sms.left_in_part != null) line += ' · ' + plural(sms.left_in_part, 'carattere', 'caratteri') + ' liberi nell\'ultima parte';
    counter.textContent = line;
    counter.classList.toggle('over', over);
    counter.dataset.parts = String(sms.parts);
    counter.dataset.encoding = sms.encoding || '';

    const list = sms.costly || [];
    if (!list.length) return;
    const tbody = h('tbody');
    for (const c of list) {
      tbody.append(h('tr', { dataset: { char: c.ch } },
        h('td', null, h('code', { class: 'char' }, c.ch)),
        h('td', null, String(c.count)),
        h('td', null, c.name || ''),
        h('td', null, c.suggestion != null && c.suggestion !== ''
          ? h('span', null, 'usa ', h('code', { class: 'char' }, c.suggestion))
          : h('span', { class: 'muted' }, 'nessuna'))));
    }
    costly.append(
      h('p', { class: 'costly-title' }, enc === 'UCS-2'
        ? 'Caratteri che obbligano alla codifica UCS-2 (più parti, più costo):'
        : 'Caratteri che occupano due posizioni:'),
      h('table', { class: 'table table-compact' },
        h('caption', { class: 'visually-hidden' }, 'Caratteri costosi nel testo SMS'),
        h('thead', null, h('tr', null,
          h('th', { scope: 'col' }, 'Carattere'),
          h('th', { scope: 'col' }, 'Volte'),
          h('th', { scope: 'col' }, 'Nome'),
          h('th', { scope: 'col' }, 'Suggerimento'))),
        tbody));
  }

  // ---- actions ----------------------------------------------------------------------------
  async function withButton(btn, fn) {
    if (btn.disabled) return;
    btn.disabled = true;
    btn.setAttribute('aria-busy', 'true');
    try {
      await fn();
    } finally {
      btn.disabled = false;
      btn.removeAttribute('aria-busy');
    }
  }

  async function onValidate() {
    const key = state.key;
    await withButton($('#btn-validate'), async () => {
      const box = $('#validate-result');
      let r;
      try {
        r = await api('POST', basePath() + '/validate', content());
      } catch (e) {
        if (e.status === 422) {
          const n = showErrors(e.body && e.body.errors);
          say('Validazione non riuscita: ' + plural(n, 'errore', 'errori') + '.', 'error');
        } else if (e.status !== 401) {
          say('Validazione non riuscita: ' + e.message, 'error');
        }
        return;
      }
      if (key !== state.key) return;
      const errors = r.errors || [];
      showErrors(errors);
      clear(box);
      const samples = (state.template && state.template.samples) || [];
      const count = Math.max(samples.length, (r.previews || []).length);
      const ul = h('ul', { class: 'sample-results' });
      const general = errors.filter((e) => e.sample == null);
      for (let i = 0; i < count; i++) {
        const mine = errors.filter((e) => e.sample === i);
        const ok = !mine.length && !general.length;
        const prev = (r.previews || [])[i];
        let extra = '';
        if (ok && prev && prev.sms) extra = ' · SMS: ' + plural(prev.sms.parts, 'parte', 'parti');
        ul.append(h('li', { class: ok ? 'ok' : 'ko', dataset: { sample: i, ok: ok ? 'true' : 'false' } },
          h('strong', null, 'Esempio ' + (i + 1) + ': '),
          ok ? 'valido' + extra : plural(mine.length + general.length, 'errore', 'errori'),
          ok && prev && prev.subject ? h('span', { class: 'muted' }, ' — «' + prev.subject + '»') : null));
      }
      box.append(h('h3', null, r.ok ? 'Il modello è valido' : 'Il modello non è valido'), ul);
      box.hidden = false;
      if (r.ok) say('Validazione riuscita: il modello funziona con tutti gli esempi (' + count + ').', 'ok');
      else say('Validazione non riuscita: ' + plural(errors.length, 'errore', 'errori') + '.', 'error');
    });
  }

  async function onSave() {
    await withButton($('#btn-save'), async () => {
      const body = content();
      body.note = $('#field-note').value;
      let v;
      try {
        v = await api('POST', basePath() + '/versions', body);
      } catch (e) {
        if (e.status === 422) {
          const n = showErrors(e.body && e.body.errors, 'La proposta non è stata salvata:');
          say('Proposta non salvata: ' + plural(n, 'errore', 'errori') + ' nel modello.', 'error');
          $('#errors').focus();
        } else if (e.status !== 401) {
          say('Proposta non salvata: ' + e.message, 'error');
        }
        return;
      }
      clearErrors();
      $('#field-note').value = '';
      say('Versione ' + v.version + ' salvata come proposta.', 'ok');
      await reloadTemplate(false);
    });
  }

  async function reloadTemplate(fill) {
    const key = state.key;
    try {
      const t = await api('GET', basePath());
      if (key === state.key) applyTemplate(t, fill);
    } catch (e) {
      if (e.status !== 401) say('Impossibile aggiornare il modello: ' + e.message, 'error');
    }
    if (state.historyOpen) await loadHistory();
  }

  async function onPublish(btn) {
    const n = Number(btn.dataset.publish);
    await withButton(btn, async () => {
      let v;
      try {
        v = await api('POST', basePath() + '/versions/' + n + '/publish');
      } catch (e) {
        if (e.status === 422) showErrors(e.body && e.body.errors, 'La versione ' + n + ' non è più valida:');
        if (e.status !== 401) say('Versione ' + n + ' non pubblicata: ' + e.message, 'error');
        return;
      }
      say('Versione ' + v.version + ' pubblicata: è ora in uso.', 'ok');
      await reloadTemplate(true);
      schedulePreview(0);
    });
  }

  function onLoadVersion(btn) {
    const v = findVersion(Number(btn.dataset.load));
    if (!v) return;
    fillFields(v);
    $('#field-note').value = '';
    say('Versione ' + v.version + ' caricata nell\'editor.', 'info');
    $('#field-subject').focus();
    schedulePreview(0);
  }

  async function onTestSend(ev) {
    ev.preventDefault();
    const to = $('#test-to');
    const channel = $('#test-channel').value;
    to.removeAttribute('aria-invalid');
    if (!to.value.trim()) {
      to.setAttribute('aria-invalid', 'true');
      say('Indica il destinatario della prova.', 'error');
      to.focus();
      return;
    }
    await withButton($('#btn-test-send'), async () => {
      const body = content();
      body.channel = channel;
      body.to = to.value.trim();
      let r;
      try {
        r = await api('POST', basePath() + '/test-send', body);
      } catch (e) {
        if (e.status === 422) {
          const errs = (e.body && e.body.errors) || [];
          if (errs.length) showErrors(errs, 'La prova non è stata inviata:');
          else to.setAttribute('aria-invalid', 'true');
        }
        if (e.status !== 401) say('Prova non inviata: ' + e.message, 'error');
        return;
      }
      say('Prova via ' + (CHANNEL_LABEL[channel] || channel) + ' accodata per ' + body.to +
        (r && r.outbox_id != null ? ' (messaggio n. ' + r.outbox_id + ')' : '') + '.', 'ok');
    });
  }

  // ---- history ----------------------------------------------------------------------------
  async function onHistory() {
    const btn = $('#btn-history');
    if (state.historyOpen) {
      state.historyOpen = false;
      $('#history').hidden = true;
      btn.setAttribute('aria-expanded', 'false');
      return;
    }
    await withButton(btn, async () => {
      if (await loadHistory()) {
        state.historyOpen = true;
        $('#history').hidden = false;
        btn.setAttribute('aria-expanded', 'true');
        focusHeading('#history-title');
      }
    });
  }

  async function loadHistory() {
    const key = state.key;
    let list;
    try {
      list = await api('GET', basePath() + '/history');
    } catch (e) {
      if (e.status !== 401) say('Impossibile leggere lo storico: ' + e.message, 'error');
      return false;
    }
    if (key !== state.key) return false;
    const tbody = $('#history-table tbody');
    clear(tbody);
    const admin = can('admin');
    for (const v of list || []) {
      const published = v.published_at
        ? h('span', null, (v.published_by || '—') + ', ', timeEl(v.published_at))
        : h('span', { class: 'muted' }, '—');
      const diff = v.diff
        ? h('details', null, h('summary', null, 'Mostra differenze'), h('pre', { class: 'diff' }, v.diff))
        : h('span', { class: 'muted' }, '—');
      // Only words that were live before can be restored (a proposal is published instead).
      const restorable = v.version === 0 || !!v.published_at;
      const action = v.state === 'live'
        ? h('span', { class: 'badge badge-ok' }, 'in uso')
        : !restorable
          ? h('span', { class: 'muted' }, '—')
          : h('button', {
            type: 'button',
            class: 'btn btn-secondary btn-small',
            dataset: { rollback: v.version },
            disabled: !admin,
            'aria-describedby': admin ? null : 'publish-hint',
            'aria-label': 'Ripristina la versione ' + v.version,
          }, 'Ripristina');
      tbody.append(h('tr', { dataset: { version: v.version, state: v.state } },
        h('th', { scope: 'row' }, 'v' + v.version),
        h('td', null, h('span', { class: 'state state-' + v.state }, VERSION_STATE[v.state] || v.state)),
        h('td', null, v.author || '—'),
        h('td', null, timeEl(v.created_at)),
        h('td', null, published),
        h('td', null, v.note || ''),
        h('td', null, diff),
        h('td', null, action)));
    }
    if (!(list || []).length) {
      tbody.append(h('tr', null, h('td', { colspan: 8, class: 'muted' }, 'Nessuna versione.')));
    }
    return true;
  }

  async function onRollback(btn) {
    const n = Number(btn.dataset.rollback);
    await withButton(btn, async () => {
      let v;
      try {
        v = await api('POST', basePath() + '/rollback', { version: n, note: 'Ripristino della versione ' + n });
      } catch (e) {
        if (e.status === 422) showErrors(e.body && e.body.errors, 'La versione ' + n + ' non può essere ripristinata:');
        if (e.status !== 401) say('Ripristino della versione ' + n + ' non riuscito: ' + e.message, 'error');
        return;
      }
      say('Versione ' + n + ' ripristinata come versione ' + v.version + ', ora in uso.', 'ok');
      await reloadTemplate(true);
      schedulePreview(0);
    });
  }

  // ---- tickets at risk --------------------------------------------------------------------
  async function loadAtRisk() {
    const table = $('#at-risk-table');
    const tbody = table.querySelector('tbody');
    table.setAttribute('aria-busy', 'true');
    let list;
    try {
      list = await api('GET', '/tickets/at-risk');
    } catch (e) {
      table.removeAttribute('aria-busy');
      if (e.status !== 401) say('Impossibile leggere le pratiche a rischio: ' + e.message, 'error');
      return;
    }
    table.removeAttribute('aria-busy');
    clear(tbody);
    for (const t of list || []) {
      let remaining;
      if (t.state === 'paused') {
        remaining = t.paused_since ? h('span', null, 'sospesa dal ', timeEl(t.paused_since)) : 'sospesa';
      } else if (t.remaining_s == null) {
        remaining = '—';
      } else if (t.remaining_s < 0) {
        remaining = 'scaduta da ' + duration(t.remaining_s);
      } else {
        remaining = duration(t.remaining_s);
      }
      tbody.append(h('tr', { class: 'risk-' + t.state, dataset: { ticket: t.number, state: t.state } },
        h('th', { scope: 'row' }, h('a', { href: '#/ticket/' + encodeURIComponent(t.number) }, t.number)),
        h('td', null, t.subject || ''),
        h('td', null, t.office || ''),
        h('td', null, capitalize(t.priority || '')),
        h('td', null, h('span', { class: 'state state-' + t.state }, RISK_STATE[t.state] || t.state)),
        h('td', null, timeEl(t.due_at)),
        h('td', null, remaining)));
    }
    $('#at-risk-empty').hidden = (list || []).length > 0;
  }

  // ---- monitoring -------------------------------------------------------------------------
  // The compliance report of a period (GET /api/v1/reports/compliance, any role) as tables and
  // SVG charts drawn here: no library, no inline style, every chart with its data table beside.
  const REPORTS = '/api/v1/reports';
  const SVG_NS = 'http://www.w3.org/2000/svg';
  const PRIORITIES = ['urgente', 'alta', 'normale', 'bassa'];
  const PRIORITY_LABEL = { urgente: 'Urgente', alta: 'Alta', normale: 'Normale', bassa: 'Bassa' };
  const CATEGORY_LABEL = { generale: '', albo_pretorio: 'albo pretorio', in_loco: 'assistenza in loco' };
  const CRITICALITY_LABEL = {
    breached: 'Termine scaduto',
    warning: 'In scadenza',
    suspension_past_cap: 'Integrazione attesa da troppo',
    message_held: 'Messaggio con esito incerto',
    citizen_unreachable: 'Cittadino non raggiungibile',
    unmatched_reply: 'Risposta non abbinata',
    office_below_threshold: 'Ufficio sotto la soglia',
  };
  // How many months the on-time chart shows, ending at the chosen month.
  const TREND_MONTHS = 6;

  const pctFmt = new Intl.NumberFormat('it-IT', { minimumFractionDigits: 1, maximumFractionDigits: 1 });
  const numFmt = new Intl.NumberFormat('it-IT', { maximumFractionDigits: 1 });
  const monthFmt = new Intl.DateTimeFormat('it-IT', { month: 'long', year: 'numeric', timeZone: 'UTC' });
  const shortMonthFmt = new Intl.DateTimeFormat('it-IT', { month: 'short', year: 'numeric', timeZone: 'UTC' });
  const dayFmt = new Intl.DateTimeFormat('it-IT', { day: 'numeric', month: 'long', year: 'numeric', timeZone: 'UTC' });

  const mon = { offices: new Set(), seq: 0, uid: 0 };

  function pct(v) {
    return v == null ? '—' : pctFmt.format(v) + '%';
  }

  // Counted seconds as hours ("26 ore", "2,5 ore").
  function hours(s) {
    if (s == null) return '—';
    const v = s / 3600;
    return numFmt.format(v) + (v === 1 ? ' ora' : ' ore');
  }

  // "2026-11" of a date, and the months from `from` to `to` (both YYYY-MM-DD).
  function monthsBetween(from, to) {
    const out = [];
    let [y, m] = from.split('-').map(Number);
    const [ty, tm] = to.split('-').map(Number);
    while (y < ty || (y === ty && m <= tm)) {
      out.push(y + '-' + String(m).padStart(2, '0'));
      m += 1;
      if (m > 12) { m = 1; y += 1; }
    }
    return out;
  }

  function monthLabel(key, short) {
    const [y, m] = key.split('-').map(Number);
    return (short ? shortMonthFmt : monthFmt).format(new Date(Date.UTC(y, m - 1, 1)));
  }

  function dayLabel(iso) {
    const [y, m, d] = iso.split('-').map(Number);
    return dayFmt.format(new Date(Date.UTC(y, m - 1, d)));
  }

  // The first and last day of month `key` shifted by `delta` months.
  function monthBounds(key, delta) {
    const [y, m] = key.split('-').map(Number);
    const first = new Date(Date.UTC(y, m - 1 + delta, 1));
    const last = new Date(Date.UTC(first.getUTCFullYear(), first.getUTCMonth() + 1, 0));
    const iso = (d) => d.toISOString().slice(0, 10);
    return [iso(first), iso(last)];
  }

  // The month before today's in Rome, "YYYY-MM".
  function previousMonth() {
    const parts = new Intl.DateTimeFormat('en-CA', { timeZone: TZ, year: 'numeric', month: '2-digit' })
      .formatToParts(new Date());
    const y = Number(parts.find((p) => p.type === 'year').value);
    const m = Number(parts.find((p) => p.type === 'month').value);
    return m === 1 ? (y - 1) + '-12' : y + '-' + String(m - 1).padStart(2, '0');
  }

  // The period the form asks for: {from, to, month?} or an error text.
  function monitoringPeriod() {
    if ($('#mon-kind').value === 'month') {
      const v = $('#mon-month').value.trim();
      if (!/^\d{4}-(0[1-9]|1[0-2])$/.test(v)) return { error: 'Indica il mese nella forma aaaa-mm.', field: '#mon-month' };
      const [from, to] = monthBounds(v, 0);
      return { from, to, month: v };
    }
    const from = $('#mon-from').value;
    const to = $('#mon-to').value;
    if (!/^\d{4}-\d{2}-\d{2}$/.test(from)) return { error: 'Indica il primo giorno.', field: '#mon-from' };
    if (!/^\d{4}-\d{2}-\d{2}$/.test(to)) return { error: 'Indica l\'ultimo giorno.', field: '#mon-to' };
    if (to < from) return { error: 'L\'ultimo giorno viene prima del primo.', field: '#mon-to' };
    return { from, to };
  }

  function reportQuery(p, office, extra) {
    const q = new URLSearchParams();
    if (p.month) q.set('month', p.month);
    else { q.set('from', p.from); q.set('to', p.to); }
    if (office) q.set('office', office);
    for (const [k, v] of Object.entries(extra || {})) q.set(k, v);
    return '?' + q.toString();
  }

  // The on-time chart's figures: one request per month (a month that is over is kept by the
  // server once computed, so the next visit reads it back at once; one long period would be
  // replayed whole every time), merged into one report's rows.
  async function trendReport(p, trend, office) {
    const periods = p.month
      ? Array.from({ length: TREND_MONTHS }, (_, i) => monthBounds(p.month, i + 1 - TREND_MONTHS))
      : [[trend.from, trend.to]];
    const reps = await Promise.all(periods.map(([from, to]) =>
      reportGet('/compliance' + reportQuery({ from, to }, office, { group_by: 'month,priority' }))));
    const last = reps[reps.length - 1];
    return { ...last, period_from: reps[0].period_from, rows: reps.flatMap((r) => r.rows) };
  }

  function reportGet(path) {
    return api('GET', path, undefined, { root: REPORTS });
  }

  function onMonitoringKind() {
    const range = $('#mon-kind').value === 'range';
    $('#mon-month-group').hidden = range;
    $('#mon-from-group').hidden = !range;
    $('#mon-to-group').hidden = !range;
  }

  function openMonitoring(moveFocus) {
    showView('monitoring');
    document.title = 'Monitoraggio · Messo';
    if (moveFocus) focusHeading('#monitoring-title');
    if (!$('#mon-month').value) $('#mon-month').value = previousMonth();
    if ($('#monitoring-report').hidden) loadMonitoring();
  }

  async function onMonitoringSubmit(ev) {
    ev.preventDefault();
    await withButton($('#btn-monitoring'), loadMonitoring);
  }

  async function loadMonitoring() {
    const err = $('#mon-error');
    err.textContent = '';
    for (const id of ['#mon-month', '#mon-from', '#mon-to']) $(id).removeAttribute('aria-invalid');
    const p = monitoringPeriod();
    if (p.error) {
      err.textContent = p.error;
      $(p.field).setAttribute('aria-invalid', 'true');
      $(p.field).focus();
      return;
    }
    const office = $('#mon-office').value;
    // The on-time chart: the last months up to the chosen one, or the chosen days.
    const trend = p.month
      ? { from: monthBounds(p.month, 1 - TREND_MONTHS)[0], to: p.to }
      : { from: p.from, to: p.to };
    const seq = ++mon.seq;
    const box = $('#monitoring-report');
    box.setAttribute('aria-busy', 'true');
    let byOffice, byMonth, byPriority, crit;
    try {
      [byOffice, byMonth, byPriority, crit] = await Promise.all([
        reportGet('/compliance' + reportQuery(p, office, { group_by: 'office' })),
        trendReport(p, trend, office),
        reportGet('/compliance' + reportQuery(p, office, { group_by: 'category,priority' })),
        reportGet('/criticalities'),
      ]);
    } catch (e) {
      box.removeAttribute('aria-busy');
      if (e.status !== 401) {
        err.textContent = 'Rapporto non disponibile: ' + e.message;
        say('Impossibile leggere il rapporto: ' + e.message, 'error');
      }
      return;
    }
    if (seq !== mon.seq) return;
    box.removeAttribute('aria-busy');
    mon.uid = 0;
    for (const r of byOffice.rows) if (r.office) mon.offices.add(r.office);
    for (const s of byOffice.satisfaction) mon.offices.add(s.office);
    fillOffices(office);
    const period = p.month ? monthLabel(p.month) : 'dal ' + dayLabel(p.from) + ' al ' + dayLabel(p.to);
    $('#monitoring-subtitle').textContent = byOffice.comune + ' · ' + capitalize(period) + ' · ' +
      (office ? 'ufficio ' + office : 'tutti gli uffici') + ' · rapporto del ' +
      dateFmt.format(new Date(byOffice.generated_at));
    setDownloads(p, office);
    renderCompliance(byOffice);
    renderOnTime(byMonth, monthsBetween(trend.from, trend.to));
    renderBreaches(byOffice);
    renderTimes(byPriority);
    renderCriticalities(crit, office);
    box.hidden = false;
    document.title = 'Monitoraggio ' + period + ' · Messo';
    say('Rapporto aggiornato: ' + period + (office ? ', ufficio ' + office : '') + '.', 'ok');
  }

  function fillOffices(selected) {
    const sel = $('#mon-office');
    clear(sel);
    sel.append(h('option', { value: '' }, 'Tutti gli uffici'));
    for (const o of [...mon.offices].sort()) sel.append(h('option', { value: o }, o));
    sel.value = selected;
  }

  function setDownloads(p, office) {
    const base = REPORTS + '/compliance';
    for (const [id, format] of [['#dl-csv', 'csv'], ['#dl-excel', 'excel'], ['#dl-open-data', 'open_data']]) {
      $(id).href = base + reportQuery(p, office, { group_by: 'office', format });
    }
  }

  // Mean and count of the answers behind `rows` (their scores), one decimal.
  function satisfactionOf(rows) {
    let n = 0;
    let sum = 0;
    for (const r of rows) {
      (r.scores || []).forEach((c, i) => { n += c; sum += c * (i + 1); });
    }
    return { answers: n, mean: n ? sum / n : null };
  }

  const COMPLIANCE_COLUMNS = [
    ['received', 'Ricevute', (r) => String(r.received)],
    ['closed', 'Chiuse', (r) => String(r.closed)],
    ['closed_on_time', 'Nei termini', (r) => String(r.closed_on_time)],
    ['closed_late', 'Fuori termine', (r) => String(r.closed_late)],
    ['on_time_pct', '% nei termini', (r) => pct(r.on_time_pct)],
    ['open_breached', 'Aperte oltre il termine', (r) => String(r.open_breached)],
    ['close_median_s', 'Tempo mediano di chiusura', (r) => hours(r.close_median_s)],
    ['close_p90_s', '90° percentile', (r) => hours(r.close_p90_s)],
  ];

  function complianceCells(r, sat) {
    const cells = COMPLIANCE_COLUMNS.map(([key, , fmt]) => h('td', { dataset: { measure: key } }, r ? fmt(r) : '—'));
    cells.push(h('td', { dataset: { measure: 'satisfaction_mean' } },
      sat.mean == null ? '—' : numFmt.format(Math.round(sat.mean * 10) / 10) + ' su 5'));
    cells.push(h('td', { dataset: { measure: 'satisfaction_answers' } }, String(sat.answers)));
    return cells;
  }

  function renderCompliance(rep) {
    const box = $('#compliance-box');
    clear(box);
    const offices = new Set(rep.rows.map((r) => r.office).filter(Boolean));
    for (const s of rep.satisfaction) offices.add(s.office);
    if (!offices.size) {
      box.append(h('p', { class: 'notice' }, 'Nessuna richiesta ricevuta, chiusa o aperta oltre il termine nel periodo.'));
      return;
    }
    const tbody = h('tbody');
    for (const o of [...offices].sort()) {
      const r = rep.rows.find((x) => x.office === o);
      tbody.append(h('tr', { dataset: { office: o } },
        h('th', { scope: 'row' }, o),
        ...complianceCells(r, satisfactionOf(rep.satisfaction.filter((s) => s.office === o)))));
    }
    const tfoot = h('tfoot', null, h('tr', { dataset: { office: '*total' } },
      h('th', { scope: 'row' }, 'Totale'),
      ...complianceCells(rep.total, satisfactionOf(rep.satisfaction))));
    box.append(h('table', { class: 'table table-compact report-table', id: 'compliance-table' },
      h('caption', null, 'Richieste per ufficio, ' + periodText(rep) + '. Tempi in ore contate; soddisfazione da 1 a 5 sulle risposte date nel periodo.'),
      h('thead', null, h('tr', null,
        h('th', { scope: 'col' }, 'Ufficio'),
        ...COMPLIANCE_COLUMNS.map(([, label]) => h('th', { scope: 'col' }, label)),
        h('th', { scope: 'col' }, 'Soddisfazione media'),
        h('th', { scope: 'col' }, 'Risposte al questionario'))),
      tbody, tfoot));
  }

  function periodText(rep) {
    return 'dal ' + dayLabel(rep.period_from) + ' al ' + dayLabel(rep.period_to);
  }

  // ---- SVG charts: built from elements, coloured by classes in app.css ----------------------
  function svgEl(tag, attrs, ...children) {
    const el = document.createElementNS(SVG_NS, tag);
    for (const [k, v] of Object.entries(attrs || {})) {
      if (v === null || v === undefined) continue;
      if (k === 'class') el.setAttribute('class', v);
      else if (k === 'text') el.textContent = v;
      else el.setAttribute(k, String(v));
    }
    for (const c of children) if (c) el.append(c);
    return el;
  }

  // Fill patterns, so that a series is told by its texture as well as its colour.
  function patterns(prefix) {
    const hatch = (id, cls, path) => svgEl('pattern', { id: prefix + id, patternUnits: 'userSpaceOnUse', width: 8, height: 8 },
      svgEl('rect', { width: 8, height: 8, class: cls }),
      path ? svgEl('path', { d: path, class: 'pattern-line' }) : null);
    return svgEl('defs', null,
      hatch('urgente', 'fill-urgente', null),
      hatch('alta', 'fill-alta', 'M0,8 L8,0 M-2,2 L2,-2 M6,10 L10,6'),
      hatch('normale', 'fill-normale', 'M0,4 L8,4'),
      hatch('bassa', 'fill-bassa', 'M4,0 L4,8 M0,4 L8,4'),
      hatch('late', 'fill-late', null),
      hatch('breached', 'fill-breached', 'M0,0 L8,8 M-2,6 L2,10 M6,-2 L10,2'),
      hatch('median', 'fill-median', null),
      hatch('p90', 'fill-p90', 'M0,8 L8,0 M-2,2 L2,-2 M6,10 L10,6'));
  }

  // An <svg role="img"> named by its title (and described), with room for the drawing.
  function chartSvg(width, height, title, desc) {
    const id = 'chart-' + (++mon.uid);
    const svg = svgEl('svg', {
      viewBox: '0 0 ' + width + ' ' + height,
      width: '100%',
      role: 'img',
      class: 'chart',
      'aria-labelledby': id + '-title ' + id + '-desc',
      preserveAspectRatio: 'xMinYMin meet',
    },
    svgEl('title', { id: id + '-title', text: title }),
    svgEl('desc', { id: id + '-desc', text: desc }),
    patterns(id + '-'));
    return { svg, id, fill: (name) => 'url(#' + id + '-' + name + ')' };
  }

  function legend(items, fill) {
    return h('ul', { class: 'legend', 'aria-hidden': 'true' }, ...items.map(([key, label]) =>
      h('li', null, legendSwatch(fill(key)), label)));
  }

  function legendSwatch(fillUrl) {
    const svg = svgEl('svg', { width: 16, height: 16, viewBox: '0 0 16 16', class: 'swatch', focusable: 'false' });
    // The swatch uses the patterns of its chart, which share the page.
    svg.append(svgEl('rect', { width: 16, height: 16, fill: fillUrl, class: 'bar' }));
    return svg;
  }

  function dataTable(id, caption, head, rows) {
    // Focusable, so that a table wider than its column can be scrolled from the keyboard.
    return h('div', { class: 'table-wrap chart-table', tabindex: 0, role: 'region', 'aria-label': caption },
      h('table', { class: 'table table-compact', id },
        h('caption', null, caption),
        h('thead', null, h('tr', null, ...head.map((c, i) => h('th', { scope: 'col', class: i ? 'num' : null }, c)))),
        h('tbody', null, ...rows.map((r) => h('tr', { dataset: r.data || {} },
          h('th', { scope: 'row' }, r.cells[0]),
          ...r.cells.slice(1).map((c) => h('td', { class: 'num' }, c)))))));
  }

  function chartFigure(chart, legendEl, note) {
    return h('div', { class: 'chart-wrap' }, chart.svg, legendEl, note ? h('p', { class: 'hint' }, note) : null);
  }

  // Grouped bars: the share closed on time per month, one bar per priority.
  function renderOnTime(rep, months) {
    const box = $('#ontime-box');
    clear(box);
    const rowOf = (m, p) => rep.rows.find((r) => r.bucket === m && r.priority === p);
    const W = 640; const H = 300; const L = 44; const R = 8; const T = 16; const B = 44;
    const title = 'Quota delle richieste chiuse nei termini per mese e priorità, ' + periodText(rep);
    const chart = chartSvg(W, H, title, 'Istogramma a barre raggruppate: per ogni mese una barra per priorità, in percentuale da 0 a 100. I valori sono nella tabella accanto.');
    const { svg } = chart;
    const plotH = H - T - B;
    const y = (v) => T + plotH - (v / 100) * plotH;
    for (const t of [0, 25, 50, 75, 100]) {
      svg.append(svgEl('line', { x1: L, x2: W - R, y1: y(t), y2: y(t), class: 'grid' }),
        svgEl('text', { x: L - 6, y: y(t) + 4, class: 'axis-label', 'text-anchor': 'end', text: t + '%' }));
    }
    const groupW = (W - L - R) / Math.max(months.length, 1);
    const barW = Math.min(22, (groupW - 10) / PRIORITIES.length);
    months.forEach((m, i) => {
      const gx = L + i * groupW + (groupW - barW * PRIORITIES.length) / 2;
      PRIORITIES.forEach((p, j) => {
        const r = rowOf(m, p);
        if (!r || r.on_time_pct == null) return;
        const x = gx + j * barW;
        svg.append(svgEl('rect', { x: x + 1, y: y(r.on_time_pct), width: barW - 2, height: Math.max(plotH - (y(r.on_time_pct) - T), 0.5), fill: chart.fill(p), class: 'bar' },
          svgEl('title', { text: monthLabel(m) + ', ' + PRIORITY_LABEL[p] + ': ' + pct(r.on_time_pct) })));
        svg.append(svgEl('text', { x: x + barW / 2, y: y(r.on_time_pct) - 3, class: 'bar-label', 'text-anchor': 'middle', text: Math.round(r.on_time_pct) }));
      });
      svg.append(svgEl('text', { x: L + i * groupW + groupW / 2, y: H - B + 18, class: 'axis-label', 'text-anchor': 'middle', text: monthLabel(m, true) }));
    });
    svg.append(svgEl('line', { x1: L, x2: W - R, y1: y(0), y2: y(0), class: 'axis' }));
    const rows = [];
    for (const m of months) {
      for (const p of PRIORITIES) {
        const r = rowOf(m, p);
        if (!r || !r.closed) continue;
        rows.push({ data: { month: m, priority: p }, cells: [capitalize(monthLabel(m)) + ', ' + PRIORITY_LABEL[p], String(r.closed), String(r.closed_on_time), pct(r.on_time_pct)] });
      }
    }
    box.append(chartFigure(chart, legend(PRIORITIES.map((p) => [p, PRIORITY_LABEL[p]]), chart.fill),
      'Sopra ogni barra la percentuale arrotondata; un mese senza chiusure non ha barre.'),
    rows.length
      ? dataTable('ontime-table', 'Chiuse nei termini per mese e priorità', ['Mese e priorità', 'Chiuse', 'Nei termini', '% nei termini'], rows)
      : h('p', { class: 'notice' }, 'Nessuna richiesta chiusa nel periodo.'));
  }

  // Stacked horizontal bars: per office, closed late and still open past the due date.
  function renderBreaches(rep) {
    const box = $('#breaches-box');
    clear(box);
    const rows = rep.rows.filter((r) => r.office).sort((a, b) => a.office.localeCompare(b.office));
    const max = Math.max(1, ...rows.map((r) => r.closed_late + r.open_breached));
    const L = 130; const R = 40; const W = 640; const rowH = 34; const T = 10;
    const H = T + Math.max(rows.length, 1) * rowH + 30;
    const title = 'Termini superati per ufficio, ' + periodText(rep);
    const chart = chartSvg(W, H, title, 'Barre orizzontali sovrapposte: per ogni ufficio le richieste chiuse fuori termine e quelle ancora aperte oltre il termine. I valori sono nella tabella accanto.');
    const { svg } = chart;
    const scale = (W - L - R) / max;
    rows.forEach((r, i) => {
      const yy = T + i * rowH;
      svg.append(svgEl('text', { x: L - 8, y: yy + rowH / 2 + 4, class: 'axis-label', 'text-anchor': 'end', text: r.office }));
      let x = L;
      for (const [key, n, label] of [['late', r.closed_late, 'chiuse fuori termine'], ['breached', r.open_breached, 'aperte oltre il termine']]) {
        if (!n) continue;
        svg.append(svgEl('rect', { x, y: yy + 6, width: n * scale, height: rowH - 12, fill: chart.fill(key), class: 'bar' },
          svgEl('title', { text: r.office + ': ' + n + ' ' + label })));
        x += n * scale;
      }
      svg.append(svgEl('text', { x: x + 6, y: yy + rowH / 2 + 4, class: 'bar-label', text: String(r.closed_late + r.open_breached) }));
    });
    svg.append(svgEl('line', { x1: L, x2: L, y1: T, y2: H - 30, class: 'axis' }));
    box.append(chartFigure(chart, legend([['late', 'Chiuse fuori termine'], ['breached', 'Aperte oltre il termine (a fine periodo)']], chart.fill),
      'Accanto a ogni barra il totale dell\'ufficio.'),
    rows.length
      ? dataTable('breaches-table', 'Termini superati per ufficio', ['Ufficio', 'Chiuse fuori termine', 'Aperte oltre il termine', 'Totale'],
        rows.map((r) => ({ data: { office: r.office }, cells: [r.office, String(r.closed_late), String(r.open_breached), String(r.closed_late + r.open_breached)] })))
      : h('p', { class: 'notice' }, 'Nessuna richiesta nel periodo.'));
  }

  // Per category and priority: median and 90th percentile of the time to close, the target as
  // a line across them.
  function renderTimes(rep) {
    const box = $('#times-box');
    clear(box);
    const order = (r) => PRIORITIES.indexOf(r.priority) * 10 + Object.keys(CATEGORY_LABEL).indexOf(r.category);
    const rows = rep.rows.filter((r) => r.closed && r.close_median_s != null).sort((a, b) => order(a) - order(b));
    const target = (r) => (rep.targets || []).find((t) => t.priority === r.priority && t.category === r.category);
    const label = (r) => PRIORITY_LABEL[r.priority] + (CATEGORY_LABEL[r.category] ? ' · ' + CATEGORY_LABEL[r.category] : '');
    const max = Math.max(1, ...rows.map((r) => Math.max(r.close_p90_s || 0, (target(r) || {}).seconds || 0)));
    const L = 190; const R = 70; const W = 640; const rowH = 46; const T = 10;
    const H = T + Math.max(rows.length, 1) * rowH + 34;
    const title = 'Tempo per chiudere rispetto all\'obiettivo, per priorità, ' + periodText(rep);
    const chart = chartSvg(W, H, title, 'Per ogni priorità due barre orizzontali, il tempo mediano e il 90° percentile in ore contate, e una linea verticale all\'obiettivo. I valori sono nella tabella accanto.');
    const { svg } = chart;
    const scale = (W - L - R) / max;
    rows.forEach((r, i) => {
      const yy = T + i * rowH;
      svg.append(svgEl('text', { x: L - 8, y: yy + rowH / 2 + 4, class: 'axis-label', 'text-anchor': 'end', text: label(r) }));
      [['median', r.close_median_s, 'mediana'], ['p90', r.close_p90_s, '90° percentile']].forEach(([key, v, what], j) => {
        const by = yy + 5 + j * 17;
        svg.append(svgEl('rect', { x: L, y: by, width: Math.max(v * scale, 0.5), height: 15, fill: chart.fill(key), class: 'bar' },
          svgEl('title', { text: label(r) + ', ' + what + ': ' + hours(v) })));
        svg.append(svgEl('text', { x: L + v * scale + 4, y: by + 12, class: 'bar-label', text: hours(v) }));
      });
      const t = target(r);
      if (t) {
        const tx = L + t.seconds * scale;
        svg.append(svgEl('line', { x1: tx, x2: tx, y1: yy + 1, y2: yy + rowH - 5, class: 'target-line' },
          svgEl('title', { text: 'Obiettivo: ' + hours(t.seconds) })));
      }
    });
    svg.append(svgEl('line', { x1: L, x2: L, y1: T, y2: H - 34, class: 'axis' }));
    const legendEl = legend([['median', 'Tempo mediano'], ['p90', '90° percentile']], chart.fill);
    legendEl.append(h('li', null, h('span', { class: 'legend-target' }), 'Obiettivo (linea tratteggiata)'));
    box.append(chartFigure(chart, legendEl, 'Ore lavorative; ore di calendario per l\'assistenza in loco.'),
      rows.length
        ? dataTable('times-table', 'Tempo per chiudere e obiettivo, per priorità', ['Priorità', 'Chiuse', 'Mediana', '90° percentile', 'Obiettivo'],
          rows.map((r) => {
            const t = target(r);
            return {
              data: { priority: r.priority, category: r.category },
              cells: [label(r), String(r.closed), hours(r.close_median_s), hours(r.close_p90_s),
                t ? hours(t.seconds) + (t.clock === 'calendar' ? ' di calendario' : ' lavorative') : '—'],
            };
          }))
        : h('p', { class: 'notice' }, 'Nessuna richiesta chiusa nel periodo.'));
  }

  function renderCriticalities(list, office) {
    const box = $('#criticalities-box');
    clear(box);
    const items = (list.items || []).filter((c) => !office || c.office === office);
    if (!items.length) {
      box.append(h('p', { class: 'notice', id: 'criticalities-empty' }, 'Nessuna criticità.'));
      return;
    }
    box.append(h('table', { class: 'table table-compact', id: 'criticalities-table' },
      h('caption', null, 'Criticità al ' + dateFmt.format(new Date(list.generated_at)) + (office ? ', ufficio ' + office : '')),
      h('thead', null, h('tr', null,
        h('th', { scope: 'col' }, 'Tipo'),
        h('th', { scope: 'col' }, 'Motivo'),
        h('th', { scope: 'col' }, 'Pratica'),
        h('th', { scope: 'col' }, 'Ufficio'),
        h('th', { scope: 'col' }, 'Priorità'))),
      h('tbody', null, ...items.map((c) => h('tr', { class: 'crit-' + c.kind, dataset: { kind: c.kind, ticket: c.ticket || '' } },
        h('th', { scope: 'row' }, CRITICALITY_LABEL[c.kind] || c.kind),
        h('td', null, c.reason),
        h('td', null, c.ticket ? h('a', { href: '#/ticket/' + encodeURIComponent(c.ticket) }, c.ticket) : '—'),
        h('td', null, c.office || '—'),
        h('td', null, c.priority ? PRIORITY_LABEL[c.priority] || c.priority : '—'))))));
  }

  // ---- wiring -----------------------------------------------------------------------------
  function wire() {
    $('#login-form').addEventListener('submit', onLogin);
    $('#logout').addEventListener('click', onLogout);
    $('#btn-validate').addEventListener('click', onValidate);
    $('#btn-save').addEventListener('click', onSave);
    $('#btn-history').addEventListener('click', onHistory);
    $('#test-send-form').addEventListener('submit', onTestSend);
    $('#btn-at-risk-reload').addEventListener('click', loadAtRisk);
    $('#editor-form').addEventListener('submit', (ev) => ev.preventDefault());
    $('#monitoring-form').addEventListener('submit', onMonitoringSubmit);
    $('#mon-kind').addEventListener('change', onMonitoringKind);
    $('#btn-print').addEventListener('click', () => window.print());

    for (const id of ['#field-subject', '#field-text', '#field-html', '#field-sms',
      '#field-io_subject', '#field-io_markdown']) {
      $(id).addEventListener('input', () => schedulePreview());
    }
    $('#preview-sample').addEventListener('change', () => schedulePreview(0));
    $('#preview-ticket').addEventListener('input', () => schedulePreview());

    // Buttons made per row: one delegated listener.
    document.addEventListener('click', (ev) => {
      const target = ev.target instanceof Element ? ev.target : null;
      if (!target) return;
      const publish = target.closest('[data-publish]');
      if (publish) return void onPublish(publish);
      const rollback = target.closest('[data-rollback]');
      if (rollback) return void onRollback(rollback);
      const load = target.closest('[data-load]');
      if (load) return void onLoadVersion(load);
      const focus = target.closest('[data-focus]');
      if (focus) {
        ev.preventDefault();
        const field = document.getElementById(focus.dataset.focus);
        if (field) field.focus();
      }
    });

    window.addEventListener('hashchange', route);
  }

  async function boot() {
    wire();
    try {
      state.user = await api('GET', '/me');
    } catch (_) {
      state.user = null;
    }
    showSession();
    route();
    document.body.dataset.ready = 'true';
  }

  // What desk.js (loaded after this script, deferred too) builds its pages with.
  window.Messo = Object.freeze({
    api,
    h,
    clear,
    timeEl,
    plural,
    duration,
    capitalize,
    say,
    can,
    withButton,
    focusHeading,
    showView,
    user: () => state.user,
    page(name, open) { pages.set(name, open); },
    onRoute(f) { hooks.route.push(f); },
    onForget(f) { hooks.forget.push(f); },
  });

  // Deferred scripts run before DOMContentLoaded: by then desk.js has added its pages.
  if (document.readyState === 'complete') boot();
  else document.addEventListener('DOMContentLoaded', boot);
})();
