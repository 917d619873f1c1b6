//! DGWS timestamps: DGWS 1.0.1 writes UTC with `Z` and no fraction, DGWS 1.0 writes
//! Europe/Copenhagen local time with no zone designator (spec §1.5). Parsing is lenient
//! (fractions allowed, with or without `Z`); formatting is strict.

use jiff::civil::DateTime;
use jiff::tz::TimeZone;
use jiff::Timestamp;

/// The DGWS version a timestamp is written in.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DgwsVersion {
    /// DGWS 1.0: local Copenhagen time, no zone designator.
    V1_0,
    /// DGWS 1.0.1: UTC with `Z`.
    V1_0_1,
}

impl DgwsVersion {
    /// The `sosi:IDCardVersion` value.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::V1_0 => "1.0",
            Self::V1_0_1 => "1.0.1",
        }
    }

    /// Parses a `sosi:IDCardVersion` value.
    pub fn from_card_version(v: &str) -> Option<Self> {
        match v {
            "1.0" => Some(Self::V1_0),
            "1.0.1" => Some(Self::V1_0_1),
            _ => None,
        }
    }

    /// The version a message timestamp is written in: seal decides purely on a trailing `Z`.
    pub fn of_timestamp(text: &str) -> Self {
        if text.trim_end().ends_with('Z') {
            Self::V1_0_1
        } else {
            Self::V1_0
        }
    }
}

fn copenhagen() -> TimeZone {
    // The bundled tzdb always has this zone; UTC is only a fallback that can't happen in practice.
    TimeZone::get("Europe/Copenhagen").unwrap_or(TimeZone::UTC)
}

/// Formats an instant the way DGWS `version` writes it.
pub fn format(ts: Timestamp, version: DgwsVersion) -> String {
    match version {
        DgwsVersion::V1_0_1 => ts.strftime("%Y-%m-%dT%H:%M:%SZ").to_string(),
        DgwsVersion::V1_0 => ts.to_zoned(copenhagen()).strftime("%Y-%m-%dT%H:%M:%S").to_string(),
    }
}

/// Parses a DGWS/xs:dateTime timestamp: with `Z` or an offset it is absolute; without a zone
/// designator it is Copenhagen local time (DGWS 1.0). Fractions are accepted and kept.
pub fn parse(text: &str) -> Option<Timestamp> {
    let text = text.trim();
    if let Ok(ts) = text.parse::<Timestamp>() {
        return Some(ts);
    }
    let local: DateTime = text.parse().ok()?;
    local.to_zoned(copenhagen()).ok().map(|z| z.timestamp())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn formats_both_versions() {
        let ts: Timestamp = "2020-04-01T13:37:48Z".parse().unwrap();
        assert_eq!(format(ts, DgwsVersion::V1_0_1), "2020-04-01T13:37:48Z");
        // CEST is UTC+2 in April.
        assert_eq!(format(ts, DgwsVersion::V1_0), "2020-04-01T15:37:48");
        let winter: Timestamp = "2020-01-01T12:00:00Z".parse().unwrap();
        assert_eq!(format(winter, DgwsVersion::V1_0), "2020-01-01T13:00:00");
    }

    #[test]
    fn fractions_are_dropped_when_formatting() {
        let ts: Timestamp = "2020-04-01T13:37:48.366Z".parse().unwrap();
        assert_eq!(format(ts, DgwsVersion::V1_0_1), "2020-04-01T13:37:48Z");
    }

    #[test]
    fn parses_leniently() {
        let z = parse("2020-04-01T13:37:48Z").unwrap();
        assert_eq!(parse("2020-04-01T13:37:48.000Z"), Some(z));
        assert_eq!(parse(" 2020-04-01T15:37:48 "), Some(z));
        assert_eq!(parse("2020-04-01T15:37:48+02:00"), Some(z));
        assert_eq!(parse("yesterday"), None);
    }

    #[test]
    fn version_follows_the_z() {
        assert_eq!(DgwsVersion::of_timestamp("2020-04-01T13:37:48Z"), DgwsVersion::V1_0_1);
        assert_eq!(DgwsVersion::of_timestamp("2020-04-01T13:37:48"), DgwsVersion::V1_0);
    }
}
