//! The date-times the control API reads and writes: ISO 8601 with a timezone (what the
//! published SDK signs) and the journal's `YYYY-MM-DD HH:MM:SS[.ffffff]` (what the reference
//! shows as `__REALTIME_TIMESTAMP`).

/// Seconds since the epoch of `YYYY-MM-DD[T ]HH:MM[:SS[.fraction]]` followed by `Z` or an
/// offset (`±HH:MM`, `±HHMM`, `±HH`). A date-time without a timezone is refused: the reference
/// cannot compare it with its clock either.
pub fn parse_iso(text: &str) -> Result<f64, &'static str> {
    let bytes = text.as_bytes();
    let mut at = Cursor { bytes, pos: 0 };
    let year = at.digits(4).ok_or("not a date-time")?;
    at.expect(b'-').ok_or("not a date-time")?;
    let month = at.digits(2).ok_or("not a date-time")?;
    at.expect(b'-').ok_or("not a date-time")?;
    let day = at.digits(2).ok_or("not a date-time")?;
    match at.next() {
        Some(b'T' | b't' | b' ') => {}
        _ => return Err("not a date-time"),
    }
    let hour = at.digits(2).ok_or("not a date-time")?;
    at.expect(b':').ok_or("not a date-time")?;
    let minute = at.digits(2).ok_or("not a date-time")?;
    let mut second = 0;
    let mut fraction = 0.0;
    if at.peek() == Some(b':') {
        at.pos += 1;
        second = at.digits(2).ok_or("not a date-time")?;
        if matches!(at.peek(), Some(b'.' | b',')) {
            at.pos += 1;
            let start = at.pos;
            while at.peek().is_some_and(|b| b.is_ascii_digit()) {
                at.pos += 1;
            }
            let digits = &text[start..at.pos];
            if digits.is_empty() || digits.len() > 9 {
                return Err("not a date-time");
            }
            fraction = format!("0.{digits}")
                .parse()
                .map_err(|_| "not a date-time")?;
        }
    }
    let offset_minutes: i64 = match at.next() {
        Some(b'Z' | b'z') => 0,
        Some(sign @ (b'+' | b'-')) => {
            let hours = at.digits(2).ok_or("invalid timezone")?;
            let minutes = match at.peek() {
                Some(b':') => {
                    at.pos += 1;
                    at.digits(2).ok_or("invalid timezone")?
                }
                Some(_) => at.digits(2).ok_or("invalid timezone")?,
                None => 0,
            };
            if hours > 23 || minutes > 59 {
                return Err("invalid timezone");
            }
            let total = i64::from(hours * 60 + minutes);
            if sign == b'-' { -total } else { total }
        }
        None => return Err("the date-time has no timezone"),
        Some(_) => return Err("not a date-time"),
    };
    if at.pos != bytes.len() {
        return Err("not a date-time");
    }
    if !(1..=12).contains(&month)
        || day == 0
        || day > days_in_month(i64::from(year), month)
        || hour > 23
        || minute > 59
        || second > 59
    {
        return Err("not a date-time");
    }
    let days = days_from_civil(i64::from(year), month, day);
    let seconds =
        days * 86_400 + i64::from(hour * 3600 + minute * 60 + second) - offset_minutes * 60;
    Ok(seconds as f64 + fraction)
}

/// `2026-08-09T12:34:56.123456Z`, as the published SDK writes its times.
pub fn format_iso_z(epoch: f64) -> String {
    let (date, time, micros) = split(epoch);
    format!("{date}T{time}.{micros:06}Z")
}

/// `2026-08-09 12:34:56.123456` (UTC), or without the fraction when it is zero: Python's
/// `str(datetime)`, as the reference's log listing shows journal times.
pub fn format_journal(epoch: f64) -> String {
    let (date, time, micros) = split(epoch);
    if micros == 0 {
        format!("{date} {time}")
    } else {
        format!("{date} {time}.{micros:06}")
    }
}

fn split(epoch: f64) -> (String, String, u32) {
    let total_micros = (epoch * 1e6).round() as i64;
    let seconds = total_micros.div_euclid(1_000_000);
    let micros = total_micros.rem_euclid(1_000_000) as u32;
    let days = seconds.div_euclid(86_400);
    let of_day = seconds.rem_euclid(86_400);
    let (year, month, day) = civil_from_days(days);
    (
        format!("{year:04}-{month:02}-{day:02}"),
        format!(
            "{:02}:{:02}:{:02}",
            of_day / 3600,
            of_day / 60 % 60,
            of_day % 60
        ),
        micros,
    )
}

struct Cursor<'a> {
    bytes: &'a [u8],
    pos: usize,
}

impl Cursor<'_> {
    fn peek(&self) -> Option<u8> {
        self.bytes.get(self.pos).copied()
    }

    fn next(&mut self) -> Option<u8> {
        let b = self.peek()?;
        self.pos += 1;
        Some(b)
    }

    fn expect(&mut self, wanted: u8) -> Option<()> {
        (self.next()? == wanted).then_some(())
    }

    fn digits(&mut self, count: usize) -> Option<u32> {
        let slice = self.bytes.get(self.pos..self.pos + count)?;
        let mut value = 0;
        for b in slice {
            if !b.is_ascii_digit() {
                return None;
            }
            value = value * 10 + u32::from(b - b'0');
        }
        self.pos += count;
        Some(value)
    }
}

fn is_leap(year: i64) -> bool {
    year % 4 == 0 && (year % 100 != 0 || year % 400 == 0)
}

fn days_in_month(year: i64, month: u32) -> u32 {
    match month {
        2 if is_leap(year) => 29,
        2 => 28,
        4 | 6 | 9 | 11 => 30,
        _ => 31,
    }
}

/// Days since 1970-01-01 of a proleptic Gregorian date (March-based years, 400-year eras).
fn days_from_civil(year: i64, month: u32, day: u32) -> i64 {
    let year = if month <= 2 { year - 1 } else { year };
    let era = year.div_euclid(400);
    let year_of_era = year - era * 400;
    let month_from_march = i64::from((month + 9) % 12);
    let day_of_year = (153 * month_from_march + 2) / 5 + i64::from(day) - 1;
    let day_of_era = year_of_era * 365 + year_of_era / 4 - year_of_era / 100 + day_of_year;
    era * 146_097 + day_of_era - 719_468
}

fn civil_from_days(days: i64) -> (i64, u32, u32) {
    let days = days + 719_468;
    let era = days.div_euclid(146_097);
    let day_of_era = days - era * 146_097;
    let year_of_era =
        (day_of_era - day_of_era / 1460 + day_of_era / 36_524 - day_of_era / 146_096) / 365;
    let day_of_year = day_of_era - (365 * year_of_era + year_of_era / 4 - year_of_era / 100);
    let month_from_march = (5 * day_of_year + 2) / 153;
    let day = (day_of_year - (153 * month_from_march + 2) / 5 + 1) as u32;
    let month = if month_from_march < 10 {
        month_from_march + 3
    } else {
        month_from_march - 9
    } as u32;
    let year = year_of_era + era * 400 + i64::from(month <= 2);
    (year, month, day)
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn what_the_sdk_and_the_reference_write() {
        // The SDK: datetime.utcnow().isoformat() + "Z".
        assert_eq!(parse_iso("2010-12-25T17:05:55Z"), Ok(1_293_296_755.0));
        assert_eq!(
            parse_iso("2023-07-14T22:14:14.132Z").map(|t| (t * 1000.0).round()),
            Ok(1_689_372_854_132.0)
        );
        assert_eq!(parse_iso("2010-12-25T18:05:55+01:00"), Ok(1_293_296_755.0));
        assert_eq!(parse_iso("2010-12-25 16:05:55-0100"), Ok(1_293_296_755.0));
        assert_eq!(parse_iso("2010-12-25T17:05Z"), Ok(1_293_296_700.0));
        assert!(parse_iso("2010-12-25T17:05:55").is_err());
        assert!(parse_iso("2010-02-30T17:05:55Z").is_err());
        assert!(parse_iso("2010-12-25T17:05:55Zjunk").is_err());
        assert_eq!(format_iso_z(1_293_296_755.5), "2010-12-25T17:05:55.500000Z");
        assert_eq!(format_journal(1_602_464_520.0), "2020-10-12 01:02:00");
        assert_eq!(
            format_journal(1_602_464_520.25),
            "2020-10-12 01:02:00.250000"
        );
        assert_eq!(format_journal(951_782_400.0), "2000-02-29 00:00:00");
    }

    proptest! {
        #[test]
        fn formatting_and_parsing_agree(micros in 0i64..8_000_000_000_000_000) {
            let epoch = micros as f64 / 1e6;
            let parsed = parse_iso(&format_iso_z(epoch)).unwrap();
            prop_assert!((parsed - epoch).abs() < 1e-5);
        }

        #[test]
        fn parsing_never_panics(text in ".{0,40}") {
            let _ = parse_iso(&text);
        }
    }
}
