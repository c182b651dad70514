//! Exposition formats for `/metrics`.
//!
//! prometheus-client writes OpenMetrics text only. OpenMetrics names a counter family without
//! `_total` (`# TYPE x counter`, sample `x_total`), has `info`/`stateset`/`unknown` types,
//! `# UNIT` and `# EOF` lines — all of which the classic Prometheus text format 0.0.4 lacks.
//! `promtool check metrics` and older scrapers read 0.0.4, so we serve OpenMetrics to scrapers
//! that ask for it and a faithful 0.0.4 translation to everyone else.

use prometheus_client::registry::Registry;

pub const OPENMETRICS_CONTENT_TYPE: &str =
    "application/openmetrics-text; version=1.0.0; charset=utf-8";
pub const TEXT_CONTENT_TYPE: &str = "text/plain; version=0.0.4; charset=utf-8";

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Format {
    OpenMetrics,
    Text,
}

impl Format {
    pub fn content_type(self) -> &'static str {
        match self {
            Format::OpenMetrics => OPENMETRICS_CONTENT_TYPE,
            Format::Text => TEXT_CONTENT_TYPE,
        }
    }

    /// Choose by the `Accept` header: OpenMetrics only when the client ranks it at least as
    /// high as plain text (Prometheus sends `application/openmetrics-text;version=1.0.0,…`).
    pub fn negotiate(accept: Option<&str>) -> Format {
        let Some(accept) = accept else {
            return Format::Text;
        };
        let (mut om, mut text) = (0.0f64, 0.0f64);
        for range in accept.split(',') {
            let mut parts = range.split(';').map(str::trim);
            let media = parts.next().unwrap_or("").to_ascii_lowercase();
            let q = parts
                .filter_map(|p| p.strip_prefix("q="))
                .filter_map(|q| q.parse::<f64>().ok())
                .next()
                .unwrap_or(1.0);
            match media.as_str() {
                "application/openmetrics-text" => om = om.max(q),
                "text/plain" | "*/*" | "text/*" => text = text.max(q),
                _ => {}
            }
        }
        if om > 0.0 && om >= text {
            Format::OpenMetrics
        } else {
            Format::Text
        }
    }
}

/// Encode `registry` in `format`.
pub fn encode(registry: &Registry, format: Format) -> Result<String, std::fmt::Error> {
    let mut om = String::with_capacity(16 * 1024);
    prometheus_client::encoding::text::encode(&mut om, registry)?;
    Ok(match format {
        Format::OpenMetrics => om,
        Format::Text => openmetrics_to_text(&om),
    })
}

/// Translate OpenMetrics text (as prometheus-client writes it) into Prometheus text 0.0.4.
/// One pass, no per-line allocation: this runs on every classic-format scrape.
pub fn openmetrics_to_text(om: &str) -> String {
    let mut out = String::with_capacity(om.len() + om.len() / 8);
    // HELP precedes TYPE in the input but must carry the renamed family name, so hold it.
    let mut pending_help: Option<(&str, &str)> = None;
    // Current family as named in the input, and whether it is a counter.
    let mut family = "";
    let mut counter = false;
    for line in om.lines() {
        if let Some(rest) = line.strip_prefix("# HELP ") {
            pending_help = Some(rest.split_once(' ').unwrap_or((rest, "")));
        } else if let Some(rest) = line.strip_prefix("# TYPE ") {
            let (name, t) = rest.split_once(' ').unwrap_or((rest, "unknown"));
            family = name;
            counter = t == "counter";
            let (suffix, new_type) = match t {
                "counter" => ("_total", "counter"),
                "info" => ("_info", "gauge"),
                "stateset" => ("", "gauge"),
                "gaugehistogram" => ("", "histogram"),
                "unknown" => ("", "untyped"),
                other => ("", other),
            };
            if let Some((_, help)) = pending_help.take().filter(|(h, _)| *h == name) {
                out.push_str("# HELP ");
                out.push_str(name);
                out.push_str(suffix);
                out.push(' ');
                // OpenMetrics escapes `"` in HELP; 0.0.4 only knows `\\` and `\n`.
                if help.contains("\\\"") {
                    out.push_str(&help.replace("\\\"", "\""));
                } else {
                    out.push_str(help);
                }
                out.push('\n');
            }
            out.push_str("# TYPE ");
            out.push_str(name);
            out.push_str(suffix);
            out.push(' ');
            out.push_str(new_type);
            out.push('\n');
        } else if line.starts_with('#') || line.is_empty() {
            // `# UNIT`, `# EOF` and comments have no 0.0.4 form.
            continue;
        } else {
            // A sample. Counters' `_created` series have no 0.0.4 equivalent.
            if counter {
                let name_end = line.find(['{', ' ']).unwrap_or(line.len());
                if line[..name_end]
                    .strip_prefix(family)
                    .is_some_and(|s| s == "_created")
                {
                    continue;
                }
            }
            out.push_str(strip_exemplar(line));
            out.push('\n');
        }
    }
    out
}

/// Drop an OpenMetrics exemplar (` # {…} v`) after the value, respecting quoted label values.
fn strip_exemplar(line: &str) -> &str {
    let mut in_quotes = false;
    let mut escaped = false;
    let mut after_labels = 0;
    for (i, c) in line.char_indices() {
        if escaped {
            escaped = false;
            continue;
        }
        match c {
            '\\' if in_quotes => escaped = true,
            '"' => in_quotes = !in_quotes,
            '}' if !in_quotes => {
                after_labels = i;
                break;
            }
            _ => {}
        }
    }
    match line[after_labels..].find(" # ") {
        Some(j) => &line[..after_labels + j],
        None => line,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn negotiation() {
        let prom = "application/openmetrics-text;version=1.0.0,application/openmetrics-text;version=0.0.1;q=0.75,text/plain;version=0.0.4;q=0.5,*/*;q=0.1";
        assert_eq!(Format::negotiate(Some(prom)), Format::OpenMetrics);
        assert_eq!(Format::negotiate(None), Format::Text);
        assert_eq!(Format::negotiate(Some("*/*")), Format::Text);
        assert_eq!(
            Format::negotiate(Some("text/plain;version=0.0.4")),
            Format::Text
        );
        assert_eq!(
            Format::negotiate(Some("text/plain;q=1,application/openmetrics-text;q=0.5")),
            Format::Text
        );
        assert_eq!(
            Format::negotiate(Some("application/openmetrics-text;q=0")),
            Format::Text
        );
    }

    #[test]
    fn translation() {
        let om = "# HELP mqtt_connects Attempts \\\"quoted\\\".\n# TYPE mqtt_connects counter\nmqtt_connects_total{broker=\"a\",result=\"success\"} 1\nmqtt_connects_created{broker=\"a\"} 17.0\n# HELP mqtt_sentinel_build Build.\n# TYPE mqtt_sentinel_build info\nmqtt_sentinel_build_info{version=\"0.1.0\"} 1\n# HELP up_time Uptime.\n# TYPE up_time gauge\n# UNIT up_time seconds\nup_time 3.0\n# HELP h Lat.\n# TYPE h histogram\nh_bucket{le=\"0.1\",x=\"} # {\"} 1 # {trace_id=\"a\"} 0.05\n# EOF\n";
        let want = "# HELP mqtt_connects_total Attempts \"quoted\".\n# TYPE mqtt_connects_total counter\nmqtt_connects_total{broker=\"a\",result=\"success\"} 1\n# HELP mqtt_sentinel_build_info Build.\n# TYPE mqtt_sentinel_build_info gauge\nmqtt_sentinel_build_info{version=\"0.1.0\"} 1\n# HELP up_time Uptime.\n# TYPE up_time gauge\nup_time 3.0\n# HELP h Lat.\n# TYPE h histogram\nh_bucket{le=\"0.1\",x=\"} # {\"} 1\n";
        assert_eq!(openmetrics_to_text(om), want);
    }
}
