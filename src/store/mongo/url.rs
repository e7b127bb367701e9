//! The `--mongo-url` as people see it: checked before anything runs, and
//! shown without its password.

/// Where the store goes when no URL is given.
pub const DEFAULT_URL: &str = "mongodb://127.0.0.1:27017/cachier";
/// The database when the URL names none.
pub const DEFAULT_DB: &str = "cachier";
/// The collection when `--mongo-collection` names none.
pub const DEFAULT_COLLECTION: &str = "cachier";

/// The parts of a MongoDB URL cachier needs without a round trip.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Parsed {
    /// `mongodb://host:port/db`: for messages, never with the password.
    pub place: String,
    pub db: String,
    /// The password in the URL, if any, to scrub from any message.
    pub password: Option<String>,
}

/// Split `url` into what cachier shows and uses; a usage error names what is wrong.
pub fn parse(url: &str) -> Result<Parsed, String> {
    let rest = if let Some(rest) = url.strip_prefix("mongodb://") {
        rest
    } else if url.starts_with("mongodb+srv://") {
        return Err(
            "mongodb+srv:// URLs are not supported by this build; list the hosts: \
             mongodb://host1:27017,host2:27017/db"
                .into(),
        );
    } else {
        return Err(
            "the MongoDB URL must start with mongodb://, e.g. mongodb://127.0.0.1:27017/cachier"
                .into(),
        );
    };
    let (authority, path) = match rest.find('/') {
        Some(i) => (&rest[..i], &rest[i + 1..]),
        None => (rest.split('?').next().unwrap_or(""), ""),
    };
    let (userinfo, hosts) = match authority.rfind('@') {
        Some(i) => (Some(&authority[..i]), &authority[i + 1..]),
        None => (None, authority),
    };
    if hosts.is_empty() {
        return Err("the MongoDB URL names no host, e.g. mongodb://127.0.0.1:27017/cachier".into());
    }
    let password = userinfo
        .and_then(|u| u.split_once(':'))
        .map(|(_, p)| p.to_string())
        .filter(|p| !p.is_empty());
    let db = path.split('?').next().unwrap_or("");
    let db = if db.is_empty() { DEFAULT_DB } else { db };
    if db.contains(['.', ' ', '"', '$', '\\', '/', '\0']) {
        return Err(format!("`{db}` is not a valid MongoDB database name"));
    }
    Ok(Parsed {
        place: format!("mongodb://{hosts}/{db}"),
        db: db.to_string(),
        password,
    })
}

/// Check a collection name; a usage error names what is wrong.
pub fn check_collection(name: &str) -> Result<(), String> {
    if name.is_empty() || name.contains(['$', '\0']) || name.starts_with("system.") {
        return Err(format!(
            "`{name}` is not a valid MongoDB collection name (--mongo-collection)"
        ));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn place_never_has_the_password() {
        let p = parse("mongodb://u:hunter2@db1:27017,db2/app?authSource=admin").unwrap();
        assert_eq!(p.place, "mongodb://db1:27017,db2/app");
        assert_eq!(p.db, "app");
        assert_eq!(p.password.as_deref(), Some("hunter2"));
        // An `@` in a password is allowed only escaped, but the last one splits.
        let p = parse("mongodb://u:a@b@h:1").unwrap();
        assert_eq!(
            (p.place.as_str(), p.db.as_str()),
            ("mongodb://h:1/cachier", "cachier")
        );
        let p = parse("mongodb://h:1/?w=1").unwrap();
        assert_eq!((p.db.as_str(), p.password), ("cachier", None));
    }

    #[test]
    fn bad_urls_are_refused() {
        assert!(parse("http://x").is_err());
        assert!(parse("mongodb+srv://x/db").is_err());
        assert!(parse("mongodb:///db").is_err());
        assert!(parse("mongodb://h/a.b").is_err());
        assert!(check_collection("").is_err());
        assert!(check_collection("a$b").is_err());
        assert!(check_collection("cache").is_ok());
    }
}
