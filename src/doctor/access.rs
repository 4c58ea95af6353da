//! Who may open a device node: its owner, group, mode bits and POSIX ACL, weighed against the
//! user the checks are about.
//!
//! udev's `uaccess` tag works through an ACL entry for the seat's user, so mode bits alone
//! would call a correctly set-up programmer inaccessible; the ACL is read and evaluated here.

use std::collections::BTreeMap;
use std::path::Path;

use serde::Serialize;

/// Read and write permission bits (`rw-`), what opening a device for programming needs.
const READ_WRITE: u8 = 0b110;

/// The user the checks are about: normally the process's own uid and groups.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Identity {
    /// User id.
    pub uid: u32,
    /// Login name, when known (from the passwd file).
    pub name: Option<String>,
    /// Primary and supplementary group ids of this process.
    pub groups: Vec<u32>,
}

impl Identity {
    /// The identity of this process, its name looked up in `users`.
    /// `None` where there are no Unix users (Windows).
    pub fn current(users: &UserDb) -> Option<Identity> {
        current_ids().map(|(uid, groups)| Identity {
            uid,
            name: users.get(uid).map(str::to_string),
            groups,
        })
    }

    /// Root may open any device node.
    pub fn is_root(&self) -> bool {
        self.uid == 0
    }

    /// Whether this process has `gid` among its groups.
    pub fn in_group(&self, gid: u32) -> bool {
        self.groups.contains(&gid)
    }
}

#[cfg(unix)]
fn current_ids() -> Option<(u32, Vec<u32>)> {
    // SAFETY: getuid and getgid cannot fail and take no pointers.
    let (uid, gid) = unsafe { (libc::getuid(), libc::getgid()) };
    // SAFETY: a zero-sized call only returns the count.
    let count = unsafe { libc::getgroups(0, std::ptr::null_mut()) };
    let mut groups = vec![gid];
    if let Ok(len) = usize::try_from(count)
        && len > 0
    {
        let mut buf: Vec<libc::gid_t> = vec![0; len];
        // SAFETY: buf has room for `count` entries, the size we pass.
        let got = unsafe { libc::getgroups(count, buf.as_mut_ptr()) };
        buf.truncate(usize::try_from(got).unwrap_or(0));
        groups.extend(buf);
    }
    groups.sort_unstable();
    groups.dedup();
    Some((uid, groups))
}

#[cfg(not(unix))]
fn current_ids() -> Option<(u32, Vec<u32>)> {
    None
}

/// The user names of `/etc/passwd`, to name uids.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct UserDb {
    names: BTreeMap<u32, String>,
}

impl UserDb {
    /// Reads a passwd file; a missing or unreadable file gives an empty database.
    pub fn load(path: &Path) -> UserDb {
        std::fs::read_to_string(path)
            .map(|text| UserDb::parse(&text))
            .unwrap_or_default()
    }

    /// Parses `name:password:uid:gid:...` lines, skipping malformed ones; the first name of a
    /// uid wins.
    pub fn parse(text: &str) -> UserDb {
        let mut names = BTreeMap::new();
        for line in text.lines() {
            let mut fields = line.trim().split(':');
            let (Some(name), Some(uid)) = (fields.next(), fields.nth(1)) else {
                continue;
            };
            if let Ok(uid) = uid.parse::<u32>()
                && !name.is_empty()
            {
                names.entry(uid).or_insert_with(|| name.to_string());
            }
        }
        UserDb { names }
    }

    /// The name of `uid`, if the file lists it.
    pub fn get(&self, uid: u32) -> Option<&str> {
        self.names.get(&uid).map(String::as_str)
    }

    /// The name of `uid`, or its number.
    pub fn name_of(&self, uid: u32) -> String {
        self.get(uid)
            .map_or_else(|| uid.to_string(), str::to_string)
    }
}

/// One group of the group file.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct GroupEntry {
    /// Group name.
    pub name: String,
    /// Group id.
    pub gid: u32,
    /// Users listed as supplementary members.
    pub members: Vec<String>,
}

/// The groups of `/etc/group`, to name gids and to see who was added to a group.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct GroupDb {
    by_gid: BTreeMap<u32, GroupEntry>,
}

impl GroupDb {
    /// Reads a group file; a missing or unreadable file gives an empty database.
    pub fn load(path: &Path) -> GroupDb {
        std::fs::read_to_string(path)
            .map(|text| GroupDb::parse(&text))
            .unwrap_or_default()
    }

    /// Parses `name:password:gid:member,member` lines, skipping malformed ones.
    pub fn parse(text: &str) -> GroupDb {
        let by_gid = text
            .lines()
            .filter_map(|line| {
                let fields: Vec<&str> = line.trim().split(':').collect();
                let [name, _, gid, members] = fields.as_slice() else {
                    return None;
                };
                let gid: u32 = gid.parse().ok()?;
                let members = members
                    .split(',')
                    .map(str::trim)
                    .filter(|m| !m.is_empty())
                    .map(str::to_string)
                    .collect();
                Some((
                    gid,
                    GroupEntry {
                        name: name.to_string(),
                        gid,
                        members,
                    },
                ))
            })
            .collect();
        GroupDb { by_gid }
    }

    /// The group with this name.
    pub fn by_name(&self, name: &str) -> Option<&GroupEntry> {
        self.by_gid.values().find(|g| g.name == name)
    }

    /// A group's name, or its number when the file does not list it.
    pub fn name_of(&self, gid: u32) -> String {
        self.by_gid
            .get(&gid)
            .map_or_else(|| gid.to_string(), |g| g.name.clone())
    }
}

/// Whom a POSIX ACL entry is about.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AclTag {
    /// The owning user (mirrors the owner mode bits).
    UserObj,
    /// A named user (what `uaccess` adds for the seat's user).
    User(u32),
    /// The owning group.
    GroupObj,
    /// A named group.
    Group(u32),
    /// The most any named entry or the owning group may be granted.
    Mask,
    /// Everybody else.
    Other,
}

/// One POSIX ACL entry.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct AclEntry {
    /// Whom it is about.
    pub tag: AclTag,
    /// `rwx` bits, read = 4, write = 2, execute = 1.
    pub perm: u8,
}

/// Parses the `system.posix_acl_access` extended attribute: a little-endian version word (2)
/// followed by 8-byte entries `{ u16 tag, u16 perm, u32 id }`. `None` if malformed.
pub fn parse_acl_xattr(bytes: &[u8]) -> Option<Vec<AclEntry>> {
    const VERSION: u32 = 2;
    let (version, entries) = bytes.split_first_chunk::<4>()?;
    if u32::from_le_bytes(*version) != VERSION || entries.len() % 8 != 0 {
        return None;
    }
    entries
        .chunks_exact(8)
        .map(|entry| {
            let tag = u16::from_le_bytes([entry[0], entry[1]]);
            let perm = u16::from_le_bytes([entry[2], entry[3]]);
            let id = u32::from_le_bytes([entry[4], entry[5], entry[6], entry[7]]);
            let tag = match tag {
                0x01 => AclTag::UserObj,
                0x02 => AclTag::User(id),
                0x04 => AclTag::GroupObj,
                0x08 => AclTag::Group(id),
                0x10 => AclTag::Mask,
                0x20 => AclTag::Other,
                _ => return None,
            };
            Some(AclEntry {
                tag,
                perm: u8::try_from(perm & 0o7).ok()?,
            })
        })
        .collect()
}

/// Owner, group, permission bits and ACL of a device node.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NodeAccess {
    /// Owning user id.
    pub uid: u32,
    /// Owning group id.
    pub gid: u32,
    /// Permission bits (`0o660`).
    pub mode: u32,
    /// Extended ACL entries; empty when the node has none.
    pub acl: Vec<AclEntry>,
}

/// How access to a node is decided for a user, and the answer.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Grant {
    /// Root opens anything.
    Root,
    /// Decided by the owner bits.
    Owner(bool),
    /// Decided by an ACL entry naming the user (udev's `uaccess`).
    AclUser(bool),
    /// Decided by group entries; the gid is the group that granted it, or the first that
    /// matched when none did.
    Group(u32, bool),
    /// Decided by the bits for everybody else.
    Other(bool),
}

impl Grant {
    /// Whether the user may open the node for reading and writing.
    pub fn allowed(self) -> bool {
        match self {
            Grant::Root => true,
            Grant::Owner(ok) | Grant::AclUser(ok) | Grant::Group(_, ok) | Grant::Other(ok) => ok,
        }
    }

    /// `through group dialout`, `as root` ... for a finding's detail.
    pub fn describe(self, groups: &GroupDb) -> String {
        match self {
            Grant::Root => "as root".into(),
            Grant::Owner(_) => "as its owner".into(),
            Grant::AclUser(_) => "through an ACL entry for you (udev's uaccess)".into(),
            Grant::Group(gid, _) => format!("through group {}", groups.name_of(gid)),
            Grant::Other(_) => "through the bits for other users".into(),
        }
    }
}

impl NodeAccess {
    /// Reads a node's owner, mode and ACL; `None` if it does not exist or cannot be examined.
    #[cfg(unix)]
    pub fn of(path: &Path) -> Option<NodeAccess> {
        use std::os::unix::fs::MetadataExt;
        let meta = std::fs::metadata(path).ok()?;
        Some(NodeAccess {
            uid: meta.uid(),
            gid: meta.gid(),
            mode: meta.mode() & 0o7777,
            acl: read_acl(path).unwrap_or_default(),
        })
    }

    /// Device nodes have no Unix owner here.
    #[cfg(not(unix))]
    pub fn of(_path: &Path) -> Option<NodeAccess> {
        None
    }

    /// Whether `who` may open the node for reading and writing, following the POSIX ACL
    /// algorithm: owner, then named user (masked), then any matching group (masked), then
    /// others. Without an ACL the mode bits stand for the owner, group and other entries.
    pub fn read_write_for(&self, who: &Identity) -> Grant {
        let bits = |shift: u32| ((self.mode >> shift) & 0o7) as u8;
        let has = |perm: u8| perm & READ_WRITE == READ_WRITE;
        if who.is_root() {
            return Grant::Root;
        }
        if who.uid == self.uid {
            return Grant::Owner(has(bits(6)));
        }
        // With an ACL the mode's group bits are the mask; the owning group's own bits sit in
        // the GROUP_OBJ entry.
        let mask = self.acl_perm(AclTag::Mask).unwrap_or(0o7);
        let named_user = self.acl.iter().find_map(|e| match e.tag {
            AclTag::User(uid) if uid == who.uid => Some(e.perm),
            _ => None,
        });
        if let Some(perm) = named_user {
            return Grant::AclUser(has(perm & mask));
        }
        let owning_group = self.acl_perm(AclTag::GroupObj).unwrap_or_else(|| bits(3));
        let group_entries =
            std::iter::once((self.gid, owning_group)).chain(self.acl.iter().filter_map(|e| {
                match e.tag {
                    AclTag::Group(gid) => Some((gid, e.perm)),
                    _ => None,
                }
            }));
        let matching: Vec<(u32, u8)> = group_entries
            .filter(|(gid, _)| who.in_group(*gid))
            .collect();
        let masked = |perm: u8| {
            if self.acl.is_empty() {
                perm
            } else {
                perm & mask
            }
        };
        if let Some(&(gid, _)) = matching.iter().find(|(_, perm)| has(masked(*perm))) {
            return Grant::Group(gid, true);
        }
        if let Some(&(gid, _)) = matching.first() {
            return Grant::Group(gid, false);
        }
        Grant::Other(has(self.acl_perm(AclTag::Other).unwrap_or_else(|| bits(0))))
    }

    fn acl_perm(&self, tag: AclTag) -> Option<u8> {
        self.acl.iter().find(|e| e.tag == tag).map(|e| e.perm)
    }

    /// `rw-rw----+ root:dialout`, as `ls -l` would show it.
    pub fn describe(&self, users: &UserDb, groups: &GroupDb) -> String {
        let mut text = String::new();
        for shift in [6, 3, 0] {
            let bits = (self.mode >> shift) & 0o7;
            text.push(if bits & 4 != 0 { 'r' } else { '-' });
            text.push(if bits & 2 != 0 { 'w' } else { '-' });
            text.push(if bits & 1 != 0 { 'x' } else { '-' });
        }
        if self
            .acl
            .iter()
            .any(|e| matches!(e.tag, AclTag::User(_) | AclTag::Group(_)))
        {
            text.push('+');
        }
        format!(
            "{text} {}:{}",
            users.name_of(self.uid),
            groups.name_of(self.gid)
        )
    }
}

/// The node's access ACL, if it has one (Linux keeps it in an extended attribute).
#[cfg(target_os = "linux")]
fn read_acl(path: &Path) -> Option<Vec<AclEntry>> {
    use std::os::unix::ffi::OsStrExt;
    let path = std::ffi::CString::new(path.as_os_str().as_bytes()).ok()?;
    let name = c"system.posix_acl_access";
    let mut buf = vec![0u8; 1024];
    // SAFETY: both strings are NUL-terminated and buf is valid for buf.len() bytes.
    let len = unsafe {
        libc::getxattr(
            path.as_ptr(),
            name.as_ptr(),
            buf.as_mut_ptr().cast(),
            buf.len(),
        )
    };
    let len = usize::try_from(len).ok()?;
    parse_acl_xattr(buf.get(..len)?)
}

#[cfg(all(unix, not(target_os = "linux")))]
fn read_acl(_path: &Path) -> Option<Vec<AclEntry>> {
    None
}

#[cfg(test)]
mod tests {
    use super::*;

    fn user(uid: u32, groups: &[u32]) -> Identity {
        Identity {
            uid,
            name: None,
            groups: groups.to_vec(),
        }
    }

    fn node(mode: u32, acl: Vec<AclEntry>) -> NodeAccess {
        NodeAccess {
            uid: 0,
            gid: 20,
            mode,
            acl,
        }
    }

    fn entry(tag: AclTag, perm: u8) -> AclEntry {
        AclEntry { tag, perm }
    }

    #[test]
    fn mode_bits_decide_without_an_acl() {
        let tty = node(0o660, Vec::new());
        assert_eq!(
            tty.read_write_for(&user(1000, &[1000])),
            Grant::Other(false)
        );
        assert_eq!(
            tty.read_write_for(&user(1000, &[1000, 20])),
            Grant::Group(20, true)
        );
        assert_eq!(tty.read_write_for(&user(0, &[0])), Grant::Root);
        let usb = node(0o664, Vec::new());
        assert!(!usb.read_write_for(&user(1000, &[1000])).allowed());
        let open = node(0o666, Vec::new());
        assert_eq!(open.read_write_for(&user(1000, &[])), Grant::Other(true));
        let mine = NodeAccess {
            uid: 1000,
            ..node(0o400, Vec::new())
        };
        assert_eq!(mine.read_write_for(&user(1000, &[])), Grant::Owner(false));
    }

    #[test]
    fn uaccess_acl_grants_the_seat_user_only() {
        // What `getfacl /dev/bus/usb/001/007` shows after uaccess: user:1000:rw-, mask::rw-.
        let acl = vec![
            entry(AclTag::UserObj, 6),
            entry(AclTag::User(1000), 6),
            entry(AclTag::GroupObj, 4),
            entry(AclTag::Mask, 6),
            entry(AclTag::Other, 4),
        ];
        let usb = node(0o664, acl.clone());
        assert_eq!(
            usb.read_write_for(&user(1000, &[1000])),
            Grant::AclUser(true)
        );
        assert_eq!(
            usb.read_write_for(&user(1001, &[1001])),
            Grant::Other(false)
        );
        // The owning group's bits come from GROUP_OBJ (r--), not from the mode's mask (rw-).
        assert_eq!(
            usb.read_write_for(&user(1001, &[20])),
            Grant::Group(20, false)
        );
        // A mask without write takes it away again.
        let mut masked = acl;
        masked[3] = entry(AclTag::Mask, 4);
        assert_eq!(
            node(0o644, masked).read_write_for(&user(1000, &[])),
            Grant::AclUser(false)
        );
    }

    #[test]
    fn any_matching_group_entry_may_grant() {
        let acl = vec![
            entry(AclTag::UserObj, 6),
            entry(AclTag::GroupObj, 0),
            entry(AclTag::Group(46), 6),
            entry(AclTag::Mask, 6),
            entry(AclTag::Other, 0),
        ];
        let n = node(0o660, acl);
        assert_eq!(
            n.read_write_for(&user(1000, &[20, 46])),
            Grant::Group(46, true)
        );
        assert_eq!(
            n.read_write_for(&user(1000, &[20])),
            Grant::Group(20, false)
        );
    }

    #[test]
    fn acl_xattr_round_trip_and_garbage() {
        let mut bytes = 2u32.to_le_bytes().to_vec();
        for (tag, perm, id) in [
            (1u16, 6u16, u32::MAX),
            (2, 6, 1000),
            (4, 6, u32::MAX),
            (16, 6, u32::MAX),
            (32, 0, u32::MAX),
        ] {
            bytes.extend(tag.to_le_bytes());
            bytes.extend(perm.to_le_bytes());
            bytes.extend(id.to_le_bytes());
        }
        let acl = parse_acl_xattr(&bytes).unwrap();
        assert_eq!(acl.len(), 5);
        assert_eq!(acl[1], entry(AclTag::User(1000), 6));
        assert_eq!(parse_acl_xattr(&bytes[..bytes.len() - 1]), None);
        assert_eq!(parse_acl_xattr(&[1, 0, 0, 0]), None);
        assert_eq!(parse_acl_xattr(&[]), None);
        let mut bad_tag = bytes.clone();
        bad_tag[4] = 0x40;
        assert_eq!(parse_acl_xattr(&bad_tag), None);
    }

    #[test]
    fn group_file_parsing() {
        let db = GroupDb::parse(
            "root:x:0:\ndialout:x:20:alice, bob\nbroken line\nplugdev:x:46:\nuucp:x:notanumber:\n",
        );
        assert_eq!(db.by_name("dialout").unwrap().members, ["alice", "bob"]);
        assert_eq!(db.name_of(46), "plugdev");
        assert_eq!(db.name_of(999), "999");
        assert!(db.by_name("uucp").is_none());
    }

    #[test]
    fn describe_like_ls() {
        let db = GroupDb::parse("dialout:x:20:\n");
        let users = UserDb::parse("root:x:0:0:root:/root:/bin/sh\nbad\n");
        let acl = vec![entry(AclTag::User(1000), 6), entry(AclTag::Mask, 6)];
        assert_eq!(
            node(0o660, acl).describe(&users, &db),
            "rw-rw----+ root:dialout"
        );
        let nobody = UserDb::default();
        assert_eq!(
            node(0o664, Vec::new()).describe(&nobody, &db),
            "rw-rw-r-- 0:dialout"
        );
    }
}
