//! Patroni's key layout under `/<namespace>/<scope>/` and the value codec.

pub mod codec;

/// Builds the full key paths of one cluster, exactly as Patroni names them.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct KeyLayout {
    base: String,
}

impl KeyLayout {
    /// `namespace` and `scope` joined and normalised like Patroni
    /// (`re.sub('/+', '/', '/'.join(['', namespace, scope]))`), with a trailing `/`.
    pub fn new(namespace: &str, scope: &str) -> KeyLayout {
        let joined = format!("/{namespace}/{scope}/");
        let mut base = String::with_capacity(joined.len());
        let mut prev_slash = false;
        for c in joined.chars() {
            if c == '/' {
                if !prev_slash {
                    base.push(c);
                }
                prev_slash = true;
            } else {
                base.push(c);
                prev_slash = false;
            }
        }
        KeyLayout { base }
    }

    /// The cluster prefix, ending in `/` (`/service/batman/`).
    pub fn prefix(&self) -> &str {
        &self.base
    }

    fn key(&self, rel: &str) -> String {
        format!("{}{rel}", self.base)
    }

    /// `leader`: member name, attached to the holder's lease.
    pub fn leader(&self) -> String {
        self.key("leader")
    }
    /// `initialize`: the bootstrap race, then the system identifier.
    pub fn initialize(&self) -> String {
        self.key("initialize")
    }
    /// `config`: dynamic configuration JSON.
    pub fn config(&self) -> String {
        self.key("config")
    }
    /// `status`: leader optime and slots.
    pub fn status(&self) -> String {
        self.key("status")
    }
    /// `history`: timeline switches.
    pub fn history(&self) -> String {
        self.key("history")
    }
    /// `failover`: switchover/failover requests.
    pub fn failover(&self) -> String {
        self.key("failover")
    }
    /// `sync`: synchronous replication state.
    pub fn sync(&self) -> String {
        self.key("sync")
    }
    /// `optime/leader`: legacy optime.
    pub fn optime_leader(&self) -> String {
        self.key("optime/leader")
    }
    /// `members/` prefix.
    pub fn members_prefix(&self) -> String {
        self.key("members/")
    }
    /// `members/<name>`.
    pub fn member(&self, name: &str) -> String {
        self.key(&format!("members/{name}"))
    }

    /// The part of `key` after the cluster prefix, if it is inside it.
    pub fn relative<'a>(&self, key: &'a str) -> Option<&'a str> {
        key.strip_prefix(self.base.as_str())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn namespace_is_normalised_like_patroni() {
        assert_eq!(
            KeyLayout::new("/service/", "postgresql").leader(),
            "/service/postgresql/leader"
        );
        assert_eq!(
            KeyLayout::new("service", "batman").member("n1"),
            "/service/batman/members/n1"
        );
        assert_eq!(KeyLayout::new("//a//b/", "c").prefix(), "/a/b/c/");
    }
}
