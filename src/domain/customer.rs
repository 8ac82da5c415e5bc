//! A customer's fields (SPEC §9): which exist, what each may hold, and the normalized keys the
//! customer view indexes and loop protection compares (lower-cased trimmed email, phone digits,
//! lower-cased names). Validation errors name the field and what was wrong, for a 422.

use serde_json::{Map, Value};

/// Customer ids the daemon makes: `cus_` + ULID.
pub const CUSTOMER_PREFIX: &str = "cus_";
pub const CREATED: &str = "customer.created";
pub const UPDATED: &str = "customer.updated";
/// Items in `medical_conditions` at most, and bytes per item.
const MAX_MEDICAL_ITEMS: usize = 100;

#[derive(Clone, Copy, PartialEq, Eq)]
enum Kind {
    Text,
    Email,
    Phone,
    Date,
    /// A string or a list of strings.
    Medical,
}

/// (name, kind, max bytes, required on create).
const FIELDS: &[(&str, Kind, usize, bool)] = &[
    ("first_name", Kind::Text, 100, true),
    ("last_name", Kind::Text, 100, true),
    ("middle_name", Kind::Text, 100, false),
    ("nickname", Kind::Text, 100, false),
    ("email", Kind::Email, 254, false),
    ("phone_number", Kind::Phone, 32, false),
    ("birthdate", Kind::Date, 10, false),
    ("gender", Kind::Text, 50, false),
    ("street", Kind::Text, 200, false),
    ("city", Kind::Text, 100, false),
    ("state", Kind::Text, 100, false),
    ("postal_code", Kind::Text, 20, false),
    ("country", Kind::Text, 100, false),
    ("occupation", Kind::Text, 100, false),
    ("notes", Kind::Text, 5000, false),
    ("external_id", Kind::Text, 128, false),
    ("medical_conditions", Kind::Medical, 200, false),
];

pub fn field_names() -> Vec<&'static str> {
    FIELDS.iter().map(|f| f.0).collect()
}

/// Validates a create (`creating`: required fields present, nulls dropped) or a patch (nulls
/// kept: they clear a field; required fields cannot be cleared). Strings come back trimmed.
pub fn validate(input: Map<String, Value>, creating: bool) -> Result<Map<String, Value>, String> {
    let mut out = Map::new();
    for (name, value) in input {
        let Some(&(_, kind, max, required)) = FIELDS.iter().find(|f| f.0 == name) else {
            return Err(format!(
                "unknown field {name:?}; accepted fields: {}",
                field_names().join(", ")
            ));
        };
        if value.is_null() {
            if required {
                return Err(format!("{name} cannot be null"));
            }
            if !creating {
                out.insert(name, Value::Null);
            }
            continue;
        }
        let checked = check(&name, kind, max, value)?;
        out.insert(name, checked);
    }
    if creating {
        for (name, _, _, required) in FIELDS {
            if *required && !out.contains_key(*name) {
                return Err(format!("{name} is required"));
            }
        }
    }
    Ok(out)
}

fn check(name: &str, kind: Kind, max: usize, value: Value) -> Result<Value, String> {
    if kind == Kind::Medical {
        return match value {
            Value::String(s) if s.len() <= max * MAX_MEDICAL_ITEMS => Ok(Value::String(s)),
            Value::Array(items)
                if items.len() <= MAX_MEDICAL_ITEMS
                    && items
                        .iter()
                        .all(|i| i.as_str().is_some_and(|s| s.len() <= max)) =>
            {
                Ok(Value::Array(items))
            }
            _ => Err(format!(
                "{name} must be a string or a list of at most {MAX_MEDICAL_ITEMS} strings of at most {max} bytes"
            )),
        };
    }
    let Value::String(s) = value else {
        return Err(format!("{name} must be a string"));
    };
    let s = s.trim().to_string();
    if s.len() > max {
        return Err(format!("{name} is longer than {max} bytes"));
    }
    if s.chars().any(|c| c.is_control() && c != '\n' && c != '\t') {
        return Err(format!("{name} contains control characters"));
    }
    match kind {
        Kind::Text if s.is_empty() && matches!(name, "first_name" | "last_name") => {
            Err(format!("{name} cannot be empty"))
        }
        Kind::Email if !is_email(&s) => Err(format!(
            "email {s:?} is not an email address (name@domain.tld)"
        )),
        Kind::Phone if !is_phone(&s) => Err(format!(
            "phone_number {s:?} must have 5 to 20 digits and only digits, spaces and + - ( ) ."
        )),
        Kind::Date if !is_date(&s) => Err(format!(
            "birthdate {s:?} must be a date as YYYY-MM-DD, not in the future"
        )),
        _ => Ok(Value::String(s)),
    }
}

fn is_email(s: &str) -> bool {
    let Some((local, domain)) = s.rsplit_once('@') else {
        return false;
    };
    !local.is_empty()
        && !local.contains('@')
        && domain.contains('.')
        && !domain.starts_with('.')
        && !domain.ends_with('.')
        && !s.chars().any(|c| c.is_whitespace())
}

fn is_phone(s: &str) -> bool {
    let digits = phone_digits(s).len();
    (5..=20).contains(&digits)
        && s.chars()
            .all(|c| c.is_ascii_digit() || matches!(c, ' ' | '+' | '-' | '(' | ')' | '.'))
}

fn is_date(s: &str) -> bool {
    let format = time::macros::format_description!("[year]-[month]-[day]");
    match time::Date::parse(s, &format) {
        Ok(d) => s.len() == 10 && d <= time::OffsetDateTime::now_utc().date(),
        Err(_) => false,
    }
}

pub fn phone_digits(s: &str) -> String {
    s.chars().filter(char::is_ascii_digit).collect()
}

pub fn normalize_email(s: &str) -> String {
    s.trim().to_lowercase()
}

fn text<'a>(data: &'a Map<String, Value>, field: &str) -> Option<&'a str> {
    data.get(field).and_then(Value::as_str)
}

/// The index keys of a customer: normalized email, phone digits, external id (each if any).
pub fn index_keys(data: &Map<String, Value>) -> (Option<String>, Option<String>, Option<String>) {
    let email = text(data, "email")
        .map(normalize_email)
        .filter(|e| !e.is_empty());
    let phone = text(data, "phone_number")
        .map(phone_digits)
        .filter(|p| !p.is_empty());
    let external = text(data, "external_id")
        .map(|e| e.trim().to_string())
        .filter(|e| !e.is_empty());
    (email, phone, external)
}

/// The identity loop protection compares (SPEC §10): who the customer is, however spelled.
#[derive(Clone, Debug, PartialEq, Eq, Hash, serde::Serialize, serde::Deserialize)]
pub struct Fingerprint {
    pub email: Option<String>,
    pub phone: Option<String>,
    /// Lower-cased, trimmed `first_name last_name`.
    pub name: String,
}

impl Fingerprint {
    pub fn of(data: &Map<String, Value>) -> Fingerprint {
        let (email, phone, _) = index_keys(data);
        let name = [text(data, "first_name"), text(data, "last_name")]
            .into_iter()
            .flatten()
            .map(|s| s.trim().to_lowercase())
            .collect::<Vec<_>>()
            .join(" ");
        Fingerprint { email, phone, name }
    }

    /// The same person: the same name, and the same email or phone where both sides have one
    /// (at least one of them present).
    pub fn matches(&self, other: &Fingerprint) -> bool {
        let same = |a: &Option<String>, b: &Option<String>| match (a, b) {
            (Some(a), Some(b)) => Some(a == b),
            _ => None,
        };
        let contact = [
            same(&self.email, &other.email),
            same(&self.phone, &other.phone),
        ];
        !self.name.is_empty()
            && self.name == other.name
            && contact.contains(&Some(true))
            && !contact.contains(&Some(false))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn map(v: Value) -> Map<String, Value> {
        v.as_object().unwrap().clone()
    }

    #[test]
    fn validation_names_the_problem() {
        let ok = validate(
            map(
                json!({"first_name": " Ann ", "last_name": "Lee", "email": "A@X.io",
                       "phone_number": "+1 (555) 010-2030", "birthdate": "1990-02-28",
                       "medical_conditions": ["asthma"]}),
            ),
            true,
        )
        .unwrap();
        assert_eq!(ok["first_name"], "Ann");
        for (input, needle) in [
            (json!({"last_name": "x"}), "first_name is required"),
            (
                json!({"first_name": 5, "last_name": "x"}),
                "must be a string",
            ),
            (
                json!({"first_name": "a", "last_name": "x", "email": "nope"}),
                "not an email",
            ),
            (
                json!({"first_name": "a", "last_name": "x", "birthdate": "1990-02-30"}),
                "YYYY-MM-DD",
            ),
            (
                json!({"first_name": "a", "last_name": "x", "birthdate": "3000-01-01"}),
                "future",
            ),
            (
                json!({"first_name": "a", "last_name": "x", "phone_number": "12"}),
                "5 to 20 digits",
            ),
            (
                json!({"first_name": "a", "last_name": "x", "shoe": "9"}),
                "unknown field",
            ),
            (
                json!({"first_name": "a".repeat(101), "last_name": "x"}),
                "longer than 100",
            ),
        ] {
            let e = validate(map(input.clone()), true).unwrap_err();
            assert!(e.contains(needle), "{input}: {e}");
        }
        assert!(validate(map(json!({"first_name": null})), false).is_err());
        let patch = validate(map(json!({"email": null})), false).unwrap();
        assert_eq!(patch["email"], Value::Null);
    }

    #[test]
    fn fingerprints_match_across_spellings() {
        let sent = Fingerprint::of(&map(json!({"first_name": "Ann", "last_name": "Lee",
            "email": "ann@x.io", "phone_number": "+1 555-010-2030"})));
        let echo = Fingerprint::of(&map(json!({"first_name": " ANN", "last_name": "lee ",
            "email": "ANN@X.IO ", "phone_number": "1 (555) 010 2030"})));
        assert!(sent.matches(&echo));
        let phone_only = Fingerprint::of(&map(json!({"first_name": "Ann", "last_name": "Lee",
            "phone_number": "15550102030"})));
        assert!(sent.matches(&phone_only));
        let other = Fingerprint::of(&map(json!({"first_name": "Ann", "last_name": "Lee",
            "email": "ann2@x.io"})));
        assert!(!sent.matches(&other));
        let no_contact = Fingerprint::of(&map(json!({"first_name": "Ann", "last_name": "Lee"})));
        assert!(!sent.matches(&no_contact));
    }
}
