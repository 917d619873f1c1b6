//! The key inventory: which signing keys on the token are `next`, `active` and `retired`.
//!
//! It lives on the token itself, as one private CKO_DATA object (CKA_APPLICATION `segl`,
//! CKA_LABEL `segl-key-inventory`), so that every appliance using the same HSM, and every
//! `segl keys` command, sees one truth, and so that changing the active key is one write: the
//! old active key becomes retired and the new one active in the same value. (Tokens commonly
//! refuse to change CKA_VALUE of a data object, so a write creates the new object before it
//! destroys the old; readers take the highest generation.) The value is a small
//! line-oriented text (readable with `pkcs11-tool --read-object`):
//!
//! ```text
//! segl-key-inventory 1
//! generation 3
//! key retired 1763860000 7374732d7369676e696e67 sts-signing
//! key active 1763890000 7374732d32303236 sts-2026
//! ```
//!
//! Each key line is `key <state> <unix seconds of the last change> <CKA_ID hex> <label>`; the
//! label comes last so it may contain spaces. Keys and their certificates are ordinary token
//! objects carrying that label and CKA_ID; the inventory only records their state.

use cryptoki::object::{Attribute, AttributeType, ObjectClass, ObjectHandle};
use cryptoki::session::Session;

use crate::module::call;

/// CKA_APPLICATION of the inventory object.
pub const INVENTORY_APPLICATION: &str = "segl";
/// CKA_LABEL of the inventory object.
pub const INVENTORY_LABEL: &str = "segl-key-inventory";
const MAGIC: &str = "segl-key-inventory 1";

/// Where a key is in its life.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum KeyState {
    /// Generated (and, once a certificate is imported, published) but not yet signing.
    Next,
    /// The key new requests are signed with. At most one.
    Active,
    /// No longer signing; its certificate is still published for a while.
    Retired,
}

impl KeyState {
    /// The word used in the inventory and in listings.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Next => "next",
            Self::Active => "active",
            Self::Retired => "retired",
        }
    }

    fn parse(s: &str) -> Option<Self> {
        match s {
            "next" => Some(Self::Next),
            "active" => Some(Self::Active),
            "retired" => Some(Self::Retired),
            _ => None,
        }
    }
}

impl std::fmt::Display for KeyState {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

/// One key's entry.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct InventoryEntry {
    /// CKA_LABEL of the key pair and of its certificate.
    pub label: String,
    /// CKA_ID of the key pair and of its certificate.
    pub id: Vec<u8>,
    /// Its state.
    pub state: KeyState,
    /// When the state last changed (Unix seconds).
    pub since: u64,
}

/// The whole inventory.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct KeyInventory {
    /// Incremented by every write; lets readers see a change with one comparison.
    pub generation: u64,
    /// Every key segl manages on the token, oldest first.
    pub entries: Vec<InventoryEntry>,
}

impl KeyInventory {
    /// The active key, if any.
    pub fn active(&self) -> Option<&InventoryEntry> {
        self.entries.iter().find(|e| e.state == KeyState::Active)
    }

    /// The entry for `label`.
    pub fn get(&self, label: &str) -> Option<&InventoryEntry> {
        self.entries.iter().find(|e| e.label == label)
    }

    /// The entry for `label`, for changing.
    pub fn get_mut(&mut self, label: &str) -> Option<&mut InventoryEntry> {
        self.entries.iter_mut().find(|e| e.label == label)
    }

    /// Parses the stored form.
    pub fn parse(value: &[u8]) -> Result<KeyInventory, String> {
        let text = std::str::from_utf8(value).map_err(|_| "not UTF-8".to_owned())?;
        let mut lines = text.lines();
        if lines.next() != Some(MAGIC) {
            return Err(format!("does not start with {MAGIC:?}"));
        }
        let mut inventory = KeyInventory::default();
        for (n, line) in lines.enumerate().map(|(n, l)| (n + 2, l)) {
            let bad = |what: &str| format!("line {n}: {what}");
            if line.is_empty() {
                continue;
            }
            if let Some(g) = line.strip_prefix("generation ") {
                inventory.generation = g.parse().map_err(|_| bad("bad generation"))?;
                continue;
            }
            let rest = line.strip_prefix("key ").ok_or_else(|| bad("unknown line"))?;
            let mut parts = rest.splitn(4, ' ');
            let state = parts.next().and_then(KeyState::parse).ok_or_else(|| bad("bad state"))?;
            let since = parts.next().and_then(|s| s.parse().ok()).ok_or_else(|| bad("bad time"))?;
            let id = parts.next().and_then(hex_decode).ok_or_else(|| bad("bad id"))?;
            let label = parts.next().filter(|l| !l.is_empty()).ok_or_else(|| bad("no label"))?;
            inventory.entries.push(InventoryEntry { label: label.to_owned(), id, state, since });
        }
        if inventory.entries.iter().filter(|e| e.state == KeyState::Active).count() > 1 {
            return Err("more than one active key".to_owned());
        }
        Ok(inventory)
    }

    /// The stored form.
    pub fn encode(&self) -> Vec<u8> {
        let mut out = format!("{MAGIC}\ngeneration {}\n", self.generation);
        for e in &self.entries {
            out.push_str(&format!("key {} {} {} {}\n", e.state, e.since, hex_encode(&e.id), e.label));
        }
        out.into_bytes()
    }
}

/// Lower-case hex.
pub fn hex_encode(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

/// Parses lower- or upper-case hex.
pub fn hex_decode(s: &str) -> Option<Vec<u8>> {
    if !s.len().is_multiple_of(2) {
        return None;
    }
    (0..s.len()).step_by(2).map(|i| u8::from_str_radix(s.get(i..i + 2)?, 16).ok()).collect()
}

fn inventory_template() -> Vec<Attribute> {
    vec![
        Attribute::Class(ObjectClass::DATA),
        Attribute::Application(INVENTORY_APPLICATION.as_bytes().to_vec()),
        Attribute::Label(INVENTORY_LABEL.as_bytes().to_vec()),
    ]
}

/// Every inventory object on the token with its value (normally one; two for the moment a
/// write replaces one).
fn inventory_objects(session: &Session) -> Result<Vec<(ObjectHandle, Vec<u8>)>, crate::Pkcs11Error> {
    let found = session.find_objects(&inventory_template()).map_err(call("C_FindObjects"))?;
    let mut objects = Vec::with_capacity(found.len());
    for object in found {
        let attrs =
            session.get_attributes(object, &[AttributeType::Value]).map_err(call("C_GetAttributeValue"))?;
        let value = attrs.into_iter().find_map(|a| match a {
            Attribute::Value(v) => Some(v),
            _ => None,
        });
        objects.push((object, value.unwrap_or_default()));
    }
    Ok(objects)
}

/// The generation a stored value claims (0 when unreadable).
fn generation_of(value: &[u8]) -> u64 {
    KeyInventory::parse(value).map(|i| i.generation).unwrap_or(0)
}

/// The raw value of the newest inventory object, if the token has one.
pub(crate) fn read_inventory_value(session: &Session) -> Result<Option<Vec<u8>>, crate::Pkcs11Error> {
    Ok(inventory_objects(session)?.into_iter().map(|(_, v)| v).max_by_key(|v| generation_of(v)))
}

/// Writes the inventory. Many tokens (SoftHSM among them) do not let CKA_VALUE of a data
/// object change, so a write creates the new object first and then destroys the older ones:
/// a reader always finds at least one, and takes the highest generation.
pub(crate) fn write_inventory_value(session: &Session, value: &[u8]) -> Result<(), crate::Pkcs11Error> {
    let older = inventory_objects(session)?;
    let mut template = inventory_template();
    template.extend([
        Attribute::Token(true),
        // Only a logged-in user may change which key signs.
        Attribute::Private(true),
        Attribute::Value(value.to_vec()),
    ]);
    session.create_object(&template).map_err(call("C_CreateObject"))?;
    for (object, _) in older {
        session.destroy_object(object).map_err(call("C_DestroyObject"))?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trip_and_refusals() {
        let inv = KeyInventory {
            generation: 3,
            entries: vec![
                InventoryEntry {
                    label: "sts-signing".into(),
                    id: b"sts".to_vec(),
                    state: KeyState::Retired,
                    since: 10,
                },
                InventoryEntry {
                    label: "sts 2026".into(),
                    id: vec![0xab, 0x01],
                    state: KeyState::Active,
                    since: 20,
                },
                InventoryEntry { label: "sts-2027".into(), id: vec![], state: KeyState::Next, since: 30 },
            ],
        };
        let parsed = KeyInventory::parse(&inv.encode()).unwrap();
        assert_eq!(parsed, inv);
        assert_eq!(parsed.active().unwrap().label, "sts 2026");
        assert!(KeyInventory::parse(b"something else\n").is_err());
        let two_active = String::from_utf8(inv.encode()).unwrap().replace("retired", "active");
        assert!(KeyInventory::parse(two_active.as_bytes()).unwrap_err().contains("more than one"));
        assert!(KeyInventory::parse(format!("{MAGIC}\nkey nope 1 00 x\n").as_bytes()).is_err());
        assert_eq!(hex_decode("aB01"), Some(vec![0xab, 0x01]));
        assert_eq!(hex_decode("abc"), None);
    }
}
