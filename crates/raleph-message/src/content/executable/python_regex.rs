//! A conservative syntax check of Python's `re` dialect: `requirements.node.address_regex`
//! must compile with Python's `re`. It reports only errors Python's parser is certain to raise
//! (unbalanced groups, unterminated sets, bad escapes and ranges, misplaced repeats, invalid
//! group references) and accepts whatever it does not model, such as verbose mode, group names
//! or look-behind widths.

/// Why Python would refuse to compile `pattern`, when this check is sure it would.
pub(super) fn python_regex_error(pattern: &str) -> Option<String> {
    let chars: Vec<char> = pattern.chars().collect();
    if has_verbose_flag(&chars) {
        return None;
    }
    let mut scanner = RegexScanner {
        chars: &chars,
        pos: 0,
        groups: 1,
        open: Vec::new(),
    };
    match scanner.pattern() {
        Ok(()) => None,
        Err(Stop::Error(reason)) => Some(reason),
        Err(Stop::Unsure) => None,
    }
}

/// The inline flag letters, and `-` that removes flags.
const FLAGS: &str = "aiLmsux-";

/// `(?…x…)` anywhere: verbose mode changes how whitespace and `#` read, so give up.
fn has_verbose_flag(chars: &[char]) -> bool {
    chars.windows(2).enumerate().any(|(i, w)| {
        w == ['(', '?']
            && chars[i + 2..]
                .iter()
                .take_while(|c| FLAGS.contains(**c))
                .any(|c| *c == 'x')
    })
}

enum Stop {
    /// Python would raise this error.
    Error(String),
    /// Beyond what this check models: accept the pattern.
    Unsure,
}

/// What the item before a repeat is, for "nothing to repeat" and "multiple repeat".
#[derive(Clone, Copy, PartialEq)]
enum Last {
    /// Start of a branch: nothing yet.
    Nothing,
    /// An anchor (`^`, `$`, `\A`, `\b`, `\B`, `\Z`), which cannot be repeated.
    Anchor,
    Repeat,
    Item,
}

struct RegexScanner<'a> {
    chars: &'a [char],
    pos: usize,
    /// Capturing groups opened so far, plus one (group 0), as Python counts them.
    groups: usize,
    /// Open groups: their capturing number, if any.
    open: Vec<Option<usize>>,
}

fn error<T>(reason: impl Into<String>) -> Result<T, Stop> {
    Err(Stop::Error(reason.into()))
}

impl RegexScanner<'_> {
    fn peek(&self) -> Option<char> {
        self.chars.get(self.pos).copied()
    }

    fn next(&mut self) -> Option<char> {
        let c = self.peek();
        if c.is_some() {
            self.pos += 1;
        }
        c
    }

    fn eat(&mut self, c: char) -> bool {
        let found = self.peek() == Some(c);
        if found {
            self.pos += 1;
        }
        found
    }

    fn pattern(&mut self) -> Result<(), Stop> {
        let mut last = Last::Nothing;
        // Whether anything but comments and global flags has been read.
        let mut started = false;
        while let Some(c) = self.next() {
            if c == '(' {
                match self.open_group(started)? {
                    Some(group) => last = group,
                    // A comment or global flags: no item, and the previous one still counts.
                    None => continue,
                }
                started = true;
                continue;
            }
            started = true;
            last = match c {
                '|' => Last::Nothing,
                ')' => {
                    if self.open.pop().is_none() {
                        return error("unbalanced parenthesis");
                    }
                    Last::Item
                }
                '[' => {
                    self.class()?;
                    Last::Item
                }
                '\\' => self.escape()?,
                '^' | '$' => Last::Anchor,
                '*' | '+' | '?' => self.repeat(last)?,
                '{' => {
                    if self.brace_repeat()? {
                        self.repeat(last)?
                    } else {
                        Last::Item
                    }
                }
                _ => Last::Item,
            };
        }
        if !self.open.is_empty() {
            return error("missing ), unterminated subpattern");
        }
        Ok(())
    }

    /// After a repeat character has been read.
    fn repeat(&mut self, last: Last) -> Result<Last, Stop> {
        match last {
            Last::Nothing | Last::Anchor => return error("nothing to repeat"),
            Last::Repeat => return error("multiple repeat"),
            Last::Item => {}
        }
        // A lazy or possessive modifier belongs to this repeat.
        if !self.eat('?') {
            self.eat('+');
        }
        Ok(Last::Repeat)
    }

    /// After `{`: whether it opens a valid `{m,n}` repeat (else `{` is a literal).
    fn brace_repeat(&mut self) -> Result<bool, Stop> {
        let start = self.pos;
        if self.peek() == Some('}') {
            return Ok(false);
        }
        let low = self.digits();
        let high = if self.eat(',') { self.digits() } else { low };
        if !self.eat('}') {
            self.pos = start;
            return Ok(false);
        }
        const MAX_REPEAT: u128 = u32::MAX as u128;
        if low.is_some_and(|n| n >= MAX_REPEAT) || high.is_some_and(|n| n >= MAX_REPEAT) {
            return error("the repetition number is too large");
        }
        if let (Some(low), Some(high)) = (low, high)
            && high < low
        {
            return error("min repeat greater than max repeat");
        }
        Ok(true)
    }

    fn digits(&mut self) -> Option<u128> {
        let mut n: Option<u128> = None;
        while let Some(d) = self.peek().and_then(|c| c.to_digit(10)) {
            self.pos += 1;
            n = Some(
                n.unwrap_or(0)
                    .saturating_mul(10)
                    .saturating_add(u128::from(d)),
            );
        }
        n
    }

    /// After `(`: what the group starts with, or `None` for a comment or global flags, which
    /// add nothing to the pattern.
    fn open_group(&mut self, started: bool) -> Result<Option<Last>, Stop> {
        if !self.eat('?') {
            self.open.push(Some(self.groups));
            self.groups += 1;
            return Ok(Some(Last::Nothing));
        }
        let Some(c) = self.next() else {
            return error("unexpected end of pattern");
        };
        match c {
            '#' => loop {
                match self.next() {
                    None => return error("missing ), unterminated comment"),
                    Some(')') => return Ok(None),
                    Some(_) => {}
                }
            },
            ':' | '=' | '!' | '>' => {}
            '<' => match self.next() {
                Some('=' | '!') => {}
                Some(other) => return error(format!("unknown extension ?<{other}")),
                None => return error("unexpected end of pattern"),
            },
            'P' => match self.next() {
                Some('<') => {
                    let name = self.name_until('>', "missing >, unterminated name")?;
                    check_group_name(&name)?;
                    self.open.push(Some(self.groups));
                    self.groups += 1;
                    return Ok(Some(Last::Nothing));
                }
                Some('=') => {
                    let name = self.name_until(')', "missing ), unterminated name")?;
                    check_group_name(&name)?;
                    return Ok(Some(Last::Item));
                }
                Some(other) => return error(format!("unknown extension ?P{other}")),
                None => return error("unexpected end of pattern"),
            },
            '(' => {
                self.name_until(')', "missing ), unterminated name")?;
            }
            c if FLAGS.contains(c) => {
                let mut flags = String::from(c);
                while let Some(f) = self.peek().filter(|f| FLAGS.contains(*f)) {
                    flags.push(f);
                    self.pos += 1;
                }
                // Flag removal and the `L`, `a`/`u` combinations have rules of their own.
                if flags.contains(['-', 'L']) || (flags.contains('a') && flags.contains('u')) {
                    return Err(Stop::Unsure);
                }
                match self.next() {
                    // Global flags (Python 3.11 and later refuse them after the start).
                    Some(')') if started => {
                        return error("global flags not at the start of the expression");
                    }
                    Some(')') => return Ok(None),
                    Some(':') => {}
                    Some(c) if c.is_alphabetic() => return error("unknown flag"),
                    _ => return error("missing -, : or )"),
                }
            }
            other => return error(format!("unknown extension ?{other}")),
        }
        self.open.push(None);
        Ok(Some(Last::Nothing))
    }

    fn name_until(&mut self, end: char, missing: &str) -> Result<String, Stop> {
        let mut name = String::new();
        loop {
            match self.next() {
                None => return error(missing),
                Some(c) if c == end => return Ok(name),
                Some(c) => name.push(c),
            }
        }
    }

    /// After `\` outside a set.
    fn escape(&mut self) -> Result<Last, Stop> {
        let Some(c) = self.next() else {
            return error("bad escape (end of pattern)");
        };
        match c {
            'A' | 'Z' | 'b' | 'B' => Ok(Last::Anchor),
            '1'..='9' => {
                let mut text = String::from(c);
                if let Some(d) = self.peek().filter(char::is_ascii_digit) {
                    self.pos += 1;
                    text.push(d);
                    let is_octal = |ch: char| ('0'..='7').contains(&ch);
                    if is_octal(c)
                        && is_octal(d)
                        && let Some(e) = self.peek().filter(|ch| is_octal(*ch))
                    {
                        self.pos += 1;
                        text.push(e);
                        if u32::from_str_radix(&text, 8).is_ok_and(|v| v > 0o377) {
                            return error(format!(
                                "octal escape value \\{text} outside of range 0-0o377"
                            ));
                        }
                        return Ok(Last::Item);
                    }
                }
                let group = text.parse::<usize>().unwrap_or(usize::MAX);
                if group >= self.groups {
                    return error(format!("invalid group reference {group}"));
                }
                if self.open.contains(&Some(group)) {
                    return error("cannot refer to an open group");
                }
                Ok(Last::Item)
            }
            _ => {
                self.common_escape(c)?;
                Ok(Last::Item)
            }
        }
    }

    /// Escapes read alike in and out of sets.
    fn common_escape(&mut self, c: char) -> Result<SetMember, Stop> {
        let hex = |scanner: &mut Self, n: usize, name: char| -> Result<u32, Stop> {
            let mut text = String::new();
            while text.len() < n && scanner.peek().is_some_and(|h| h.is_ascii_hexdigit()) {
                text.extend(scanner.next());
            }
            if text.len() != n {
                return error(format!("incomplete escape \\{name}{text}"));
            }
            u32::from_str_radix(&text, 16).map_err(|_| Stop::Unsure)
        };
        match c {
            'd' | 'D' | 's' | 'S' | 'w' | 'W' => Ok(SetMember::Category),
            'a' => Ok(SetMember::Literal(7)),
            'b' => Ok(SetMember::Literal(8)),
            'f' => Ok(SetMember::Literal(12)),
            'n' => Ok(SetMember::Literal(10)),
            'r' => Ok(SetMember::Literal(13)),
            't' => Ok(SetMember::Literal(9)),
            'v' => Ok(SetMember::Literal(11)),
            'x' => hex(self, 2, 'x').map(SetMember::Literal),
            'u' => hex(self, 4, 'u').map(SetMember::Literal),
            'U' => {
                let v = hex(self, 8, 'U')?;
                if v > 0x10FFFF {
                    return error("bad escape \\U");
                }
                Ok(SetMember::Literal(v))
            }
            'N' => {
                if !self.eat('{') {
                    return error("missing {");
                }
                // Whether the name exists is not checked, so its value is unknown.
                self.name_until('}', "missing }, unterminated name")?;
                Ok(SetMember::Unknown)
            }
            '0'..='7' => {
                // An octal escape of up to three digits (`\0…` outside a set, any in a set).
                let mut text = String::from(c);
                while text.len() < 3 && self.peek().is_some_and(|d| ('0'..='7').contains(&d)) {
                    text.extend(self.next());
                }
                let v = u32::from_str_radix(&text, 8).map_err(|_| Stop::Unsure)?;
                if v > 0o377 {
                    return error(format!(
                        "octal escape value \\{text} outside of range 0-0o377"
                    ));
                }
                Ok(SetMember::Literal(v))
            }
            '8' | '9' => error(format!("bad escape \\{c}")),
            c if c.is_ascii_alphabetic() => error(format!("bad escape \\{c}")),
            c => Ok(SetMember::Literal(u32::from(c))),
        }
    }

    /// After `[`: a set up to its closing `]`.
    fn class(&mut self) -> Result<(), Stop> {
        self.eat('^');
        let mut first = true;
        loop {
            let Some(c) = self.next() else {
                return error("unterminated character set");
            };
            if c == ']' && !first {
                return Ok(());
            }
            first = false;
            let low = self.class_item(c)?;
            if self.peek() == Some('-') {
                self.pos += 1;
                let Some(d) = self.next() else {
                    return error("unterminated character set");
                };
                if d == ']' {
                    return Ok(());
                }
                let high = self.class_item(d)?;
                match (low, high) {
                    (SetMember::Literal(low), SetMember::Literal(high)) if high < low => {
                        return error("bad character range");
                    }
                    (SetMember::Category, _) | (_, SetMember::Category) => {
                        return error("bad character range");
                    }
                    _ => {}
                }
            }
        }
    }

    /// One member of a set, after its first character `c`.
    fn class_item(&mut self, c: char) -> Result<SetMember, Stop> {
        if c != '\\' {
            return Ok(SetMember::Literal(u32::from(c)));
        }
        let Some(e) = self.next() else {
            return error("bad escape (end of pattern)");
        };
        match e {
            'A' | 'Z' | 'B' => error(format!("bad escape \\{e}")),
            _ => self.common_escape(e),
        }
    }
}

/// What an escape or a set member stands for.
#[derive(Clone, Copy)]
enum SetMember {
    /// One code point.
    Literal(u32),
    /// A class such as `\d`, which cannot end a range.
    Category,
    /// A code point this check cannot tell (`\N{name}`).
    Unknown,
}

/// A group name must be a Python identifier; only ASCII names are checked.
fn check_group_name(name: &str) -> Result<(), Stop> {
    if name.is_empty() {
        return error("missing group name");
    }
    if !name.is_ascii() {
        return Err(Stop::Unsure);
    }
    let mut chars = name.chars();
    let starts_well = chars
        .next()
        .is_some_and(|c| c.is_ascii_alphabetic() || c == '_');
    if !starts_well || !chars.all(|c| c.is_ascii_alphanumeric() || c == '_') {
        return error(format!("bad character in group name '{name}'"));
    }
    Ok(())
}
