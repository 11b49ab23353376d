//! Serial readers from configuration.
//!
//! The format is pcscd's `reader.conf` (`FRIENDLYNAME`, `DEVICENAME`, `LIBPATH`, `CHANNELID`),
//! so an installation that already lists its GemPC Twin for pcscd can point reader-driver at
//! the same file. An entry is a serial reader when its `LIBPATH` is libccidtwin (or absent).
//! `DEVICENAME` is `path[:reader type]` as libccid reads it; the type is ignored (only the
//! GemPC Twin is spoken). Three keys of our own may follow in files that pcscd does not read:
//! `BAUDRATE n`, `ECHO yes|no` and `TIMEOUT_MS n`.
//!
//! ```text
//! FRIENDLYNAME "Kiosk reader"
//! DEVICENAME   /dev/ttyS0:GemPCTwin
//! LIBPATH      /usr/lib/pcsc/drivers/serial/libccidtwin.so
//! ```

use std::time::Duration;

use super::error::SerialError;
use super::reader::SerialReaderConfig;

#[derive(Default)]
struct Entry {
    line: usize,
    name: Option<String>,
    device: Option<String>,
    lib: Option<String>,
    baud: Option<u32>,
    echo: Option<bool>,
    timeout: Option<Duration>,
}

fn finish(e: Entry, out: &mut Vec<SerialReaderConfig>) -> Result<(), SerialError> {
    if e.lib
        .as_deref()
        .is_some_and(|l| !l.ends_with("libccidtwin.so"))
    {
        return Ok(());
    }
    let Some(device) = e.device else {
        return Err(SerialError::Config {
            line: e.line,
            reason: "entry without DEVICENAME".into(),
        });
    };
    let path = device
        .split_once(':')
        .map_or(device.as_str(), |(p, _)| p)
        .to_string();
    let name = e
        .name
        .unwrap_or_else(|| format!("GemPC Twin serial {path}"));
    let mut c = SerialReaderConfig::new(name, path);
    if let Some(b) = e.baud {
        c.link.baud = b;
    }
    if let Some(echo) = e.echo {
        c.link.echo = echo;
    }
    if let Some(t) = e.timeout {
        c.link.response_timeout = t;
    }
    out.push(c);
    Ok(())
}

/// The serial readers of a `reader.conf`-style text.
pub fn parse_reader_conf(text: &str) -> Result<Vec<SerialReaderConfig>, SerialError> {
    let mut out = Vec::new();
    let mut current: Option<Entry> = None;
    for (i, raw) in text.lines().enumerate() {
        let line = i + 1;
        let l = raw.trim();
        if l.is_empty() || l.starts_with('#') {
            continue;
        }
        let (key, value) = l
            .split_once(char::is_whitespace)
            .map_or((l, ""), |(k, v)| (k, v.trim()));
        let value = value.trim_matches('"').to_string();
        let err = |reason: &str| SerialError::Config {
            line,
            reason: reason.to_string(),
        };
        if key.eq_ignore_ascii_case("FRIENDLYNAME") {
            if let Some(e) = current.take() {
                finish(e, &mut out)?;
            }
            current = Some(Entry {
                line,
                name: Some(value),
                ..Entry::default()
            });
            continue;
        }
        let e = current.get_or_insert_with(|| Entry {
            line,
            ..Entry::default()
        });
        match key.to_ascii_uppercase().as_str() {
            "DEVICENAME" => e.device = Some(value),
            "LIBPATH" => e.lib = Some(value),
            "CHANNELID" => {}
            "BAUDRATE" => {
                e.baud = Some(
                    value
                        .parse()
                        .ok()
                        .filter(|b| *b > 0)
                        .ok_or_else(|| err("BAUDRATE must be a positive number"))?,
                );
            }
            "ECHO" => {
                e.echo = Some(match value.to_ascii_lowercase().as_str() {
                    "yes" | "true" | "1" => true,
                    "no" | "false" | "0" => false,
                    _ => return Err(err("ECHO must be yes or no")),
                });
            }
            "TIMEOUT_MS" => {
                e.timeout = Some(Duration::from_millis(
                    value
                        .parse()
                        .map_err(|_| err("TIMEOUT_MS must be a number"))?,
                ));
            }
            _ => return Err(err(&format!("unknown key {key}"))),
        }
    }
    if let Some(e) = current {
        finish(e, &mut out)?;
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    #[test]
    fn reads_serial_entries_and_skips_others() {
        let text = "# test\nFRIENDLYNAME \"SSCard Virtual A\"\nDEVICENAME /dev/null:0x8B1B\n\
                    LIBPATH /x/libifdvpcd.so\nCHANNELID 0x8B1B\n\n\
                    FRIENDLYNAME \"Kiosk\"\nDEVICENAME /dev/ttyS0:GemPCTwin\n\
                    LIBPATH /usr/lib/pcsc/drivers/serial/libccidtwin.so\nBAUDRATE 9600\nECHO no\n";
        let r = parse_reader_conf(text).unwrap();
        assert_eq!(r.len(), 1);
        assert_eq!(r[0].name, "Kiosk");
        assert_eq!(r[0].link.path, "/dev/ttyS0");
        assert_eq!(r[0].link.baud, 9600);
        assert!(!r[0].link.echo);
        assert!(parse_reader_conf("FRIENDLYNAME x\n").is_err());
        assert!(parse_reader_conf("DEVICENAME /dev/ttyS1\nBAUDRATE fast\n").is_err());
        assert!(parse_reader_conf("DEVICENAME /dev/ttyS1\nCOLOR red\n").is_err());
        let r = parse_reader_conf("DEVICENAME /dev/ttyS1\n").unwrap();
        assert_eq!(r[0].link.baud, 115_200);
    }
}
