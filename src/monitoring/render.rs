//! The compliance report as files and pages: CSV (plain, or for Italian Excel), the open-data
//! CSV for the transparency section, a text table and a self-contained HTML page. Pure.
//!
//! Every cell that comes from stored data (an office name) is escaped for where it goes:
//! HTML-escaped in the page, quoted in CSV, and a CSV cell that a spreadsheet would read as a
//! formula (`=`, `+`, `-`, `@`, tab, carriage return first) gets a leading apostrophe.

use std::fmt::Write as _;

use chrono::NaiveDate;

use super::{Compliance, Criticality, ReportRow};
use crate::calendar::Calendar;
use crate::portal::page::esc;
use crate::time::Timestamp;

/// `dd/mm/yyyy HH:MM` in the calendar's local time.
pub fn local_datetime(calendar: &Calendar, t: Timestamp) -> String {
    let d = calendar.local_date(t);
    let (h, m, _) = calendar.local_hms(t);
    format!("{} {h:02}:{m:02}", date_it(d))
}

/// `gg/mm/aaaa`.
pub fn date_it(d: NaiveDate) -> String {
    d.format("%d/%m/%Y").to_string()
}

/// `72,5%`.
pub fn percent_it(p: f64) -> String {
    format!("{}%", decimal_it(p, 1))
}

/// A number with `places` decimals and a decimal comma.
fn decimal_it(v: f64, places: usize) -> String {
    format!("{v:.places$}").replace('.', ",")
}

/// Seconds as hours with two decimals (`12.50`), or empty.
fn hours(s: Option<i64>, comma: bool) -> String {
    match s {
        None => String::new(),
        Some(s) => {
            let v = format!("{:.2}", s as f64 / 3600.0);
            if comma { v.replace('.', ",") } else { v }
        }
    }
}

/// How a CSV is written.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CsvStyle {
    /// RFC 4180: `,` between cells, ISO dates, decimal point, UTF-8 without BOM.
    Plain,
    /// What Italian Excel opens as it is: UTF-8 with BOM, `;` between cells, dates `gg/mm/aaaa`,
    /// decimal comma.
    Excel,
}

/// One CSV cell: neutralised if a spreadsheet would run it, quoted when it must be.
fn cell(v: &str, sep: char) -> String {
    let v = if v.starts_with(['=', '+', '-', '@', '\t', '\r']) && v.parse::<f64>().is_err() {
        format!("'{v}")
    } else {
        v.to_owned()
    };
    if v.contains([sep, '"', '\n', '\r']) {
        format!("\"{}\"", v.replace('"', "\"\""))
    } else {
        v
    }
}

fn line(out: &mut String, cells: &[String], sep: char) {
    let joined: Vec<String> = cells.iter().map(|c| cell(c, sep)).collect();
    out.push_str(&joined.join(&sep.to_string()));
    out.push_str("\r\n");
}

/// The columns of the report CSV, in order.
pub const CSV_COLUMNS: [&str; 22] = [
    "bucket",
    "from",
    "to",
    "priority",
    "category",
    "office",
    "channel",
    "received",
    "closed",
    "closed_on_time",
    "closed_late",
    "on_time_pct",
    "open_breached",
    "close_median_h",
    "close_p90_h",
    "first_responses",
    "first_response_median_h",
    "first_response_p90_h",
    "suspended_h",
    "integration_requests",
    "auto_closed",
    "reopenings",
];

fn row_cells(r: &ReportRow, style: CsvStyle) -> Vec<String> {
    let excel = style == CsvStyle::Excel;
    let date = |d: NaiveDate| if excel { date_it(d) } else { d.to_string() };
    let x = &r.row;
    vec![
        x.bucket.clone(),
        date(x.bucket_from),
        date(x.bucket_to),
        x.priority
            .map(|p| p.as_str().to_owned())
            .unwrap_or_default(),
        x.category
            .map(|c| c.as_str().to_owned())
            .unwrap_or_default(),
        x.office.clone().unwrap_or_default(),
        x.channel.clone().unwrap_or_default(),
        x.received.to_string(),
        x.closed.to_string(),
        x.closed_on_time.to_string(),
        x.closed_late.to_string(),
        r.on_time_pct
            .map(|p| {
                if excel {
                    decimal_it(p, 1)
                } else {
                    format!("{p:.1}")
                }
            })
            .unwrap_or_default(),
        x.open_breached.to_string(),
        hours(x.close_median_s, excel),
        hours(x.close_p90_s, excel),
        x.first_responses.to_string(),
        hours(x.first_response_median_s, excel),
        hours(x.first_response_p90_s, excel),
        hours(Some(x.suspended_s), excel),
        x.integration_requests.to_string(),
        x.auto_closed.to_string(),
        x.reopenings.to_string(),
    ]
}

/// The report's rows as CSV (the total last, its bucket `total`).
pub fn csv(c: &Compliance, style: CsvStyle) -> Vec<u8> {
    let sep = match style {
        CsvStyle::Plain => ',',
        CsvStyle::Excel => ';',
    };
    let mut out = String::new();
    if style == CsvStyle::Excel {
        out.push('\u{feff}');
    }
    let header: Vec<String> = CSV_COLUMNS.iter().map(|s| (*s).to_owned()).collect();
    line(&mut out, &header, sep);
    for r in &c.rows {
        line(&mut out, &row_cells(r, style), sep);
    }
    if let Some(t) = &c.total {
        let mut cells = row_cells(t, style);
        cells[0] = "total".to_owned();
        line(&mut out, &cells, sep);
    }
    out.into_bytes()
}

/// The columns of the open-data CSV (Italian names, documented in `docs/reports.md`).
pub const OPEN_DATA_COLUMNS: [&str; 13] = [
    "periodo_dal",
    "periodo_al",
    "ufficio",
    "priorita",
    "categoria",
    "canale_ricezione",
    "richieste_ricevute",
    "richieste_chiuse",
    "chiuse_nei_termini",
    "chiuse_oltre_i_termini",
    "percentuale_nei_termini",
    "aperte_oltre_i_termini",
    "mediana_ore_lavorative_chiusura",
];

/// The open-data CSV: aggregates only, no ticket numbers or personal data; ISO dates, `,`
/// between cells, decimal point (what open-data portals expect).
pub fn open_data_csv(c: &Compliance) -> Vec<u8> {
    let mut out = String::new();
    let header: Vec<String> = OPEN_DATA_COLUMNS.iter().map(|s| (*s).to_owned()).collect();
    line(&mut out, &header, ',');
    for r in &c.rows {
        let x = &r.row;
        let cells = vec![
            x.bucket_from.to_string(),
            x.bucket_to.to_string(),
            x.office.clone().unwrap_or_default(),
            x.priority
                .map(|p| p.as_str().to_owned())
                .unwrap_or_default(),
            x.category
                .map(|c| c.as_str().to_owned())
                .unwrap_or_default(),
            x.channel.clone().unwrap_or_default(),
            x.received.to_string(),
            x.closed.to_string(),
            x.closed_on_time.to_string(),
            x.closed_late.to_string(),
            r.on_time_pct.map(|p| format!("{p:.1}")).unwrap_or_default(),
            x.open_breached.to_string(),
            hours(x.close_median_s, false),
        ];
        line(&mut out, &cells, ',');
    }
    out.into_bytes()
}

/// The label of a row's group: its bucket and the grouped values.
fn group_label(x: &crate::reports::Row) -> String {
    let mut parts = vec![x.bucket.clone()];
    if let Some(p) = x.priority {
        parts.push(p.as_str().to_owned());
    }
    if let Some(c) = x.category {
        parts.push(c.as_str().to_owned());
    }
    if let Some(o) = &x.office {
        parts.push(o.clone());
    }
    if let Some(ch) = &x.channel {
        parts.push(ch.clone());
    }
    parts.join(" · ")
}

/// The columns of the text table and the HTML table: header and a row's values.
const TABLE_HEADER: [&str; 9] = [
    "Gruppo",
    "Ricevute",
    "Chiuse",
    "Nei termini",
    "Oltre",
    "% nei termini",
    "Aperte scadute",
    "Mediana (ore lav.)",
    "90° perc. (ore lav.)",
];

fn table_cells(r: &ReportRow, label: String) -> [String; 9] {
    let x = &r.row;
    [
        label,
        x.received.to_string(),
        x.closed.to_string(),
        x.closed_on_time.to_string(),
        x.closed_late.to_string(),
        r.on_time_pct
            .map(percent_it)
            .unwrap_or_else(|| "—".to_owned()),
        x.open_breached.to_string(),
        hours(x.close_median_s, true),
        hours(x.close_p90_s, true),
    ]
}

fn table_rows(c: &Compliance) -> Vec<[String; 9]> {
    let mut rows: Vec<[String; 9]> = c
        .rows
        .iter()
        .map(|r| table_cells(r, group_label(&r.row)))
        .collect();
    if let Some(t) = &c.total {
        rows.push(table_cells(t, "Totale".to_owned()));
    }
    rows
}

/// The title of the report: `Monitoraggio dei tempi — Comune di X — 01/11/2026–30/11/2026`.
pub fn title(c: &Compliance) -> String {
    format!(
        "Monitoraggio dei tempi delle richieste — {} — dal {} al {}",
        c.comune,
        date_it(c.period_from),
        date_it(c.period_to)
    )
}

/// The most criticalities a text or page lists; the rest are counted.
pub const LISTED: usize = 100;

fn more_line(more: usize) -> String {
    format!("… e altre {more}: l'elenco completo è nella console, alla pagina Monitoraggio.")
}

/// A plain-text table (for the terminal and the text part of the monthly e-mail).
pub fn text(c: &Compliance, criticalities: &[Criticality]) -> String {
    let rows = table_rows(c);
    let mut widths: Vec<usize> = TABLE_HEADER.iter().map(|h| h.chars().count()).collect();
    for r in &rows {
        for (w, v) in widths.iter_mut().zip(r.iter()) {
            *w = (*w).max(v.chars().count());
        }
    }
    let fmt_line = |cells: &[String]| -> String {
        let mut s = String::new();
        for (i, (v, w)) in cells.iter().zip(&widths).enumerate() {
            let pad = w.saturating_sub(v.chars().count());
            if i == 0 {
                s.push_str(v);
                s.push_str(&" ".repeat(pad));
            } else {
                s.push_str("  ");
                s.push_str(&" ".repeat(pad));
                s.push_str(v);
            }
        }
        s.trim_end().to_owned()
    };
    let mut out = String::new();
    let _ = writeln!(out, "{}", title(c));
    if let Some(o) = &c.office {
        let _ = writeln!(out, "Ufficio: {o}");
    }
    out.push('\n');
    let header: Vec<String> = TABLE_HEADER.iter().map(|h| (*h).to_owned()).collect();
    let _ = writeln!(out, "{}", fmt_line(&header));
    let _ = writeln!(
        out,
        "{}",
        "-".repeat(widths.iter().sum::<usize>() + 2 * (widths.len() - 1))
    );
    if rows.is_empty() {
        let _ = writeln!(out, "Nessuna richiesta nel periodo.");
    }
    for r in &rows {
        let _ = writeln!(out, "{}", fmt_line(r));
    }
    if !criticalities.is_empty() {
        let _ = writeln!(out, "\nCriticità rilevate ({}):", criticalities.len());
        for k in criticalities.iter().take(LISTED) {
            let who = k
                .ticket
                .as_deref()
                .map(|n| format!("{n}: "))
                .unwrap_or_default();
            let _ = writeln!(out, "- {who}{}", k.reason);
        }
        if let Some(more) = criticalities.len().checked_sub(LISTED).filter(|m| *m > 0) {
            let _ = writeln!(out, "{}", more_line(more));
        }
    }
    let _ = writeln!(
        out,
        "\nOre lavorative: orario d'ufficio del calendario, sospensioni escluse. Definizioni: {}.",
        c.definitions
    );
    out
}

/// A self-contained HTML page (no external resource, styles inline in one `<style>`), for the
/// command line's `--format html` and the monthly e-mail.
pub fn html(c: &Compliance, criticalities: &[Criticality]) -> String {
    let mut out = String::new();
    let t = esc(&title(c));
    let _ = write!(
        out,
        "<!DOCTYPE html>\n<html lang=\"it\"><head><meta charset=\"utf-8\"><title>{t}</title>\
         <style>body{{font-family:sans-serif;color:#1a1a1a;margin:1.5em}}\
         table{{border-collapse:collapse;margin:1em 0}}th,td{{border:1px solid #888;padding:.3em .6em}}\
         td.n{{text-align:right}}caption{{text-align:left;font-weight:bold;margin-bottom:.4em}}</style>\
         </head><body><h1>{t}</h1>"
    );
    if let Some(o) = &c.office {
        let _ = write!(out, "<p>Ufficio: {}</p>", esc(o));
    }
    out.push_str("<table><caption>Richieste per gruppo</caption><thead><tr>");
    for h in TABLE_HEADER {
        let _ = write!(out, "<th scope=\"col\">{}</th>", esc(h));
    }
    out.push_str("</tr></thead><tbody>");
    let rows = table_rows(c);
    if rows.is_empty() {
        out.push_str("<tr><td colspan=\"9\">Nessuna richiesta nel periodo.</td></tr>");
    }
    for r in &rows {
        out.push_str("<tr>");
        for (i, v) in r.iter().enumerate() {
            if i == 0 {
                let _ = write!(out, "<th scope=\"row\">{}</th>", esc(v));
            } else {
                let _ = write!(out, "<td class=\"n\">{}</td>", esc(v));
            }
        }
        out.push_str("</tr>");
    }
    out.push_str("</tbody></table>");
    if !criticalities.is_empty() {
        let _ = write!(
            out,
            "<h2>Criticità rilevate ({})</h2><ul>",
            criticalities.len()
        );
        for k in criticalities.iter().take(LISTED) {
            let who = k
                .ticket
                .as_deref()
                .map(|n| format!("<strong>{}</strong>: ", esc(n)))
                .unwrap_or_default();
            let _ = write!(out, "<li>{who}{}</li>", esc(&k.reason));
        }
        out.push_str("</ul>");
        if let Some(more) = criticalities.len().checked_sub(LISTED).filter(|m| *m > 0) {
            let _ = write!(out, "<p>{}</p>", esc(&more_line(more)));
        }
    }
    let _ = writeln!(
        out,
        "<p>Ore lavorative: orario d'ufficio del calendario, sospensioni escluse. Definizioni: {}.</p>\
         </body></html>",
        esc(c.definitions)
    );
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn formula_cells_are_neutralised_and_separators_quoted() {
        assert_eq!(cell("=HYPERLINK(\"x\")", ','), "\"'=HYPERLINK(\"\"x\"\")\"");
        assert_eq!(cell("@cmd", ';'), "'@cmd");
        assert_eq!(cell("-12.5", ','), "-12.5");
        assert_eq!(cell("anagrafe; tributi", ';'), "\"anagrafe; tributi\"");
        assert_eq!(cell("anagrafe; tributi", ','), "anagrafe; tributi");
        assert_eq!(cell("riga\nnuova", ','), "\"riga\nnuova\"");
    }

    #[test]
    fn italian_numbers_and_dates() {
        assert_eq!(percent_it(72.46), "72,5%");
        assert_eq!(hours(Some(5_400), true), "1,50");
        assert_eq!(hours(Some(5_400), false), "1.50");
        assert_eq!(hours(None, true), "");
        let d = NaiveDate::from_ymd_opt(2026, 11, 3).expect("date");
        assert_eq!(date_it(d), "03/11/2026");
    }
}
