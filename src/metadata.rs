//! RFC 7865 recording metadata (`application/rs-metadata[+xml]`) in the
//! dialects real SRCs send.
//!
//! [`parse`] reads the document with `roxmltree` under hard limits (size,
//! depth, element count; any DOCTYPE or entity declaration is refused, so
//! entity-expansion attacks never start) and matches elements by local name
//! in the RFC 7865 namespace, the draft namespace, the BroadWorks namespace or
//! none, prefixed or not. Draft attribute spellings (`id=`, `session=`),
//! `<send>`/`<recv>` inside `<participant>` or in `<participantstreamassoc>`,
//! `<nameID aor>` or `<aor>` children and bare AORs are all accepted.
//! Anything unknown is kept verbatim in [`RecordingMetadata::extensions`] and
//! searched for well-known original-call identifiers (UCID, Genesys UUID,
//! Cisco session ids, BroadWorks tracking id), which also set
//! [`RecordingMetadata::vendor_hint`].
//!
//! Streams map to participants only through the metadata
//! ([`RecordingMetadata::sender_of_label`]), never by m-line order. A mixed
//! stream (one m-line carrying several parties) is one `<stream>` that several
//! participants `<send>`; [`RecordingMetadata::senders_of_label`] returns all.

use serde::{Deserialize, Serialize};

#[derive(Debug, thiserror::Error, Clone, PartialEq, Eq)]
pub enum MetadataError {
    #[error("metadata exceeds {0} bytes")]
    TooLarge(usize),
    #[error("metadata nests deeper than {0} elements")]
    TooDeep(usize),
    #[error("metadata is not well-formed XML: {0}")]
    Xml(String),
    #[error("metadata root is <{0}>, expected <recording>")]
    WrongRoot(String),
}

#[derive(Debug, Clone, Copy)]
pub struct MetadataLimits {
    pub max_bytes: usize,
    pub max_depth: usize,
    pub max_elements: usize,
}

impl Default for MetadataLimits {
    fn default() -> Self {
        Self {
            max_bytes: 64 * 1024,
            max_depth: 32,
            max_elements: 4096,
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, Default)]
#[serde(rename_all = "lowercase")]
pub enum DataMode {
    #[default]
    Complete,
    Partial,
}

/// Which namespace the document used.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Dialect {
    /// `urn:ietf:params:xml:ns:recording:1` (RFC 7865)
    Rfc7865,
    /// `urn:ietf:params:xml:ns:recording` (drafts; AudioCodes, older Acme)
    Draft,
    /// `urn:ietf:params:xml:ns:siprec` (BroadWorks)
    BroadWorks,
    /// No or another namespace
    Unknown,
}

/// A participant (`<participant>`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, Default)]
pub struct MdParticipant {
    /// `participant_id` (or draft `id`) attribute.
    pub id: String,
    /// AORs from `<nameID aor=..>` or `<aor>` children, normalised: a bare
    /// `user@host` gets `sip:` prepended.
    pub aors: Vec<String>,
    /// Display name (`<name>` inside nameID, or `<name>` child).
    pub name: Option<String>,
    /// Stream ids this participant sends (from `<send>` inside the
    /// participant or from `participantstreamassoc`).
    pub sends: Vec<String>,
    pub receives: Vec<String>,
}

/// A stream (`<stream>`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, Default)]
pub struct MdStream {
    /// `stream_id` (or draft `id`) attribute.
    pub id: String,
    /// `<label>` child: matches an SDP `a=label`.
    pub label: Option<String>,
    /// `session_id` (or draft `session`) attribute.
    pub session: Option<String>,
}

/// An identifier of the original (recorded) call found in the metadata.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct OriginalCallId {
    /// `sipSessionID`, `ucid`, `genesys_uuid`, `broadworks_tracking_id`,
    /// `call_id`, ...
    pub kind: String,
    pub value: String,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, Default)]
pub struct RecordingMetadata {
    pub data_mode: DataMode,
    pub dialect: Option<Dialect>,
    pub participants: Vec<MdParticipant>,
    pub streams: Vec<MdStream>,
    pub original_call_ids: Vec<OriginalCallId>,
    /// Vendor extension elements we do not interpret, as raw XML text.
    pub extensions: Vec<String>,
    /// Best guess of the SRC vendor from the document (e.g. "cisco",
    /// "broadworks", "avaya", "genesys"), if any marker was seen.
    pub vendor_hint: Option<String>,
}

/// RFC 7865 namespace.
pub const NS_RECORDING_1: &str = "urn:ietf:params:xml:ns:recording:1";
/// Pre-RFC draft namespace (AudioCodes, older Acme Packet).
pub const NS_RECORDING_DRAFT: &str = "urn:ietf:params:xml:ns:recording";
/// BroadWorks namespace.
pub const NS_SIPREC_BROADWORKS: &str = "urn:ietf:params:xml:ns:siprec";

/// How many times an undeclared element/attribute prefix is patched with a
/// synthetic namespace declaration before giving up.
const MAX_PREFIX_FIXUPS: usize = 8;

/// Nesting ceiling whatever `MetadataLimits::max_depth` says: the XML parser
/// recurses per level, so hostile nesting must never reach it.
pub const HARD_MAX_DEPTH: usize = 256;

/// Normalise an AOR: trims, drops surrounding `<>`, and prepends `sip:` to a
/// bare `user@host` (anything without a URI scheme). Empty → `None`.
pub fn normalize_aor(raw: &str) -> Option<String> {
    let s = raw
        .trim()
        .trim_start_matches('<')
        .trim_end_matches('>')
        .trim();
    if s.is_empty() {
        return None;
    }
    let has_scheme = match s.find(':') {
        Some(colon) => {
            let scheme = s.get(..colon).unwrap_or_default();
            let before_at = s.find('@').is_none_or(|at| colon < at);
            before_at
                && scheme
                    .chars()
                    .next()
                    .is_some_and(|c| c.is_ascii_alphabetic())
                && scheme
                    .chars()
                    .all(|c| c.is_ascii_alphanumeric() || matches!(c, '+' | '-' | '.'))
        }
        None => false,
    };
    if has_scheme {
        Some(s.to_owned())
    } else {
        Some(format!("sip:{s}"))
    }
}

fn contains_ci(hay: &str, needle: &str) -> bool {
    let n = needle.as_bytes();
    hay.as_bytes()
        .windows(n.len())
        .any(|w| w.eq_ignore_ascii_case(n))
}

fn is_ncname(s: &str) -> bool {
    let mut c = s.chars();
    c.next().is_some_and(|f| f.is_alphabetic() || f == '_')
        && c.all(|x| x.is_alphanumeric() || matches!(x, '_' | '-' | '.'))
        && !s.eq_ignore_ascii_case("xmlns")
        && !s.eq_ignore_ascii_case("xml")
}

/// Inserts `xmlns:<prefix>="urn:x-earshot:undeclared:<prefix>"` into the
/// root start tag (SBCs do send undeclared prefixes).
fn declare_prefix(text: &str, prefix: &str) -> Option<String> {
    let bytes = text.as_bytes();
    let mut i = 0;
    // Find the first '<' that opens an element (not `<?`, `<!`).
    loop {
        let rel = text.get(i..)?.find('<')?;
        i += rel;
        match bytes.get(i + 1) {
            Some(b'?') => {
                i += text.get(i..)?.find("?>")? + 2;
            }
            Some(b'!') if text.get(i..)?.starts_with("<!--") => {
                i += text.get(i..)?.find("-->")? + 3;
            }
            Some(b'!') => return None,
            Some(_) => break,
            None => return None,
        }
    }
    let name_len = text
        .get(i + 1..)?
        .find(|c: char| c.is_whitespace() || c == '>' || c == '/')?;
    let at = i + 1 + name_len;
    let mut out = String::with_capacity(text.len() + 64);
    out.push_str(text.get(..at)?);
    out.push_str(&format!(
        " xmlns:{prefix}=\"urn:x-earshot:undeclared:{prefix}\""
    ));
    out.push_str(text.get(at..)?);
    Some(out)
}

/// Maximum element nesting of `text`, stopping early once it exceeds
/// `limit`. Exact for well-formed XML (comments, CDATA, processing
/// instructions, declarations and quoted attribute values are skipped);
/// for malformed input the XML parser reports the error afterwards. Runs
/// before the tree is built so hostile nesting never reaches a recursive
/// code path.
fn nesting_exceeds(text: &str, limit: usize) -> bool {
    let b = text.as_bytes();
    let find = |from: usize, pat: &[u8]| -> Option<usize> {
        b.get(from..)?
            .windows(pat.len())
            .position(|w| w == pat)
            .map(|p| from + p + pat.len())
    };
    let mut i = 0usize;
    let mut depth = 0usize;
    while i < b.len() {
        if b.get(i) != Some(&b'<') {
            i += 1;
            continue;
        }
        let rest = b.get(i..).unwrap_or_default();
        let next = if rest.starts_with(b"<!--") {
            find(i + 4, b"-->")
        } else if rest.starts_with(b"<![CDATA[") {
            find(i + 9, b"]]>")
        } else if rest.starts_with(b"<?") {
            find(i + 2, b"?>")
        } else if rest.starts_with(b"<!") {
            find(i + 2, b">")
        } else if rest.starts_with(b"</") {
            depth = depth.saturating_sub(1);
            find(i + 2, b">")
        } else {
            // Start tag: its '>' outside quoted attribute values.
            let mut j = i + 1;
            let mut quote: Option<u8> = None;
            let mut end = None;
            while let Some(&c) = b.get(j) {
                match quote {
                    Some(q) if c == q => quote = None,
                    Some(_) => {}
                    None if c == b'"' || c == b'\'' => quote = Some(c),
                    None if c == b'>' => {
                        end = Some(j);
                        break;
                    }
                    None => {}
                }
                j += 1;
            }
            end.map(|e| {
                if b.get(e.wrapping_sub(1)) != Some(&b'/') {
                    depth += 1;
                }
                e + 1
            })
        };
        if depth > limit {
            return true;
        }
        match next {
            Some(n) => i = n,
            None => break,
        }
    }
    false
}

fn xml_err(e: &roxmltree::Error) -> MetadataError {
    MetadataError::Xml(e.to_string())
}

/// Parse a metadata document. No DTD or entities are accepted (a DOCTYPE is
/// an error); size, depth and element count are capped by `limits`.
/// Elements are matched by local name in any of the known namespaces, with
/// or without prefixes. Unknown elements are kept in `extensions`.
///
/// Undeclared prefixes (`<rs:recording>` without `xmlns:rs`) are tolerated
/// by declaring them on the fly. Original-call identifiers are collected from
/// `<sipSessionID>` and from well-known vendor markers inside extensions
/// (Avaya/Acme UCID, Genesys call UUID, Cisco session id/GUID, BroadWorks
/// tracking id, a plain `callid`).
pub fn parse(xml: &[u8], limits: &MetadataLimits) -> Result<RecordingMetadata, MetadataError> {
    if xml.len() > limits.max_bytes {
        return Err(MetadataError::TooLarge(limits.max_bytes));
    }
    let text = std::str::from_utf8(xml).map_err(|_| MetadataError::Xml("not UTF-8".into()))?;
    if contains_ci(text, "<!DOCTYPE") || contains_ci(text, "<!ENTITY") {
        return Err(MetadataError::Xml(
            "DOCTYPE and entity declarations are not allowed".into(),
        ));
    }
    let max_depth = limits.max_depth.min(HARD_MAX_DEPTH);
    if nesting_exceeds(text, max_depth) {
        return Err(MetadataError::TooDeep(max_depth));
    }
    let nodes_limit =
        u32::try_from(limits.max_elements.saturating_mul(4).saturating_add(16)).unwrap_or(u32::MAX);
    let opts = roxmltree::ParsingOptions {
        allow_dtd: false,
        nodes_limit,
    };
    let mut owned = text.to_owned();
    let mut fixups = 0;
    loop {
        let res = roxmltree::Document::parse_with_options(&owned, opts);
        let undeclared = match &res {
            Err(roxmltree::Error::UnknownNamespace(p, _))
                if fixups < MAX_PREFIX_FIXUPS && is_ncname(p) =>
            {
                Some(p.clone())
            }
            _ => None,
        };
        match (res, undeclared) {
            (Ok(doc), _) => return interpret(&doc, limits),
            (Err(_), Some(prefix)) => {
                fixups += 1;
                let patched = declare_prefix(&owned, &prefix)
                    .ok_or_else(|| MetadataError::Xml(format!("unknown prefix {prefix}")))?;
                owned = patched;
            }
            (Err(roxmltree::Error::NodesLimitReached), None) => {
                return Err(MetadataError::Xml(format!(
                    "more than {} elements",
                    limits.max_elements
                )))
            }
            (Err(e), None) => return Err(xml_err(&e)),
        }
    }
}

fn check_shape(doc: &roxmltree::Document, limits: &MetadataLimits) -> Result<(), MetadataError> {
    // Nodes come in document order, so a parent's depth is known before its
    // children's. Iterative: no recursion on attacker-controlled nesting.
    let mut depth: Vec<u32> = Vec::new();
    let mut elements = 0usize;
    for n in doc.root().descendants() {
        let idx = n.id().get_usize();
        if depth.len() <= idx {
            depth.resize(idx + 1, 0);
        }
        if !n.is_element() {
            continue;
        }
        elements += 1;
        if elements > limits.max_elements {
            return Err(MetadataError::Xml(format!(
                "more than {} elements",
                limits.max_elements
            )));
        }
        let parent_depth = n
            .parent()
            .and_then(|p| depth.get(p.id().get_usize()).copied())
            .unwrap_or(0);
        let d = parent_depth.saturating_add(1);
        if let Some(slot) = depth.get_mut(idx) {
            *slot = d;
        }
        let max_depth = limits.max_depth.min(HARD_MAX_DEPTH);
        if d as usize > max_depth {
            return Err(MetadataError::TooDeep(max_depth));
        }
    }
    Ok(())
}

fn local(n: &roxmltree::Node) -> String {
    n.tag_name().name().to_ascii_lowercase()
}

/// First attribute whose local name matches one of `names` (case-insensitive).
fn attr_any<'a>(n: &roxmltree::Node<'a, '_>, names: &[&str]) -> Option<&'a str> {
    names.iter().find_map(|want| {
        n.attributes()
            .find(|a| a.name().eq_ignore_ascii_case(want))
            .map(|a| a.value())
    })
}

fn text_of(n: &roxmltree::Node) -> Option<String> {
    let t: String = n
        .children()
        .filter(|c| c.is_text())
        .filter_map(|c| c.text())
        .collect();
    let t = t.trim();
    (!t.is_empty()).then(|| t.to_owned())
}

/// Vendor named by a namespace URI or prefix.
fn classify_vendor(s: &str) -> Option<&'static str> {
    let s = s.to_ascii_lowercase();
    const TABLE: &[(&str, &str)] = &[
        ("acmepacket", "oracle"),
        ("apkt", "oracle"),
        ("oracle", "oracle"),
        ("avaya", "avaya"),
        ("cisco", "cisco"),
        ("genesys", "genesys"),
        ("broadworks", "broadworks"),
        ("broadsoft", "broadworks"),
        ("bwext", "broadworks"),
        ("audiocodes", "audiocodes"),
        ("sonus", "ribbon"),
        ("ribbon", "ribbon"),
        ("metaswitch", "metaswitch"),
        ("freeswitch", "freeswitch"),
        ("opensips", "opensips"),
    ];
    TABLE.iter().find(|(k, _)| s.contains(k)).map(|(_, v)| *v)
}

struct Ctx<'t> {
    text: &'t str,
    root_ns: Option<&'t str>,
    md: RecordingMetadata,
    marker_vendor: Option<String>,
    ext_vendor: Option<String>,
}

impl<'t> Ctx<'t> {
    fn ours(&self, n: &roxmltree::Node) -> bool {
        match n.tag_name().namespace() {
            None => true,
            Some(ns) => {
                Some(ns) == self.root_ns
                    || ns == NS_RECORDING_1
                    || ns == NS_RECORDING_DRAFT
                    || ns == NS_SIPREC_BROADWORKS
            }
        }
    }

    fn prefix_of(&self, n: &roxmltree::Node) -> String {
        let raw = self.text.get(n.range()).unwrap_or_default();
        let qname = raw
            .trim_start_matches('<')
            .split(|c: char| c.is_whitespace() || c == '>' || c == '/')
            .next()
            .unwrap_or_default();
        qname
            .split_once(':')
            .map(|(p, _)| p.to_owned())
            .unwrap_or_default()
    }

    fn vendor_of(&self, n: &roxmltree::Node) -> Option<&'static str> {
        n.tag_name()
            .namespace()
            .and_then(classify_vendor)
            .or_else(|| classify_vendor(&self.prefix_of(n)))
    }

    fn add_id(&mut self, kind: &str, value: String) {
        if !self
            .md
            .original_call_ids
            .iter()
            .any(|o| o.kind == kind && o.value == value)
        {
            self.md.original_call_ids.push(OriginalCallId {
                kind: kind.to_owned(),
                value,
            });
        }
    }

    /// A container (`recording`, `group`, `session`): dispatch its children.
    fn container(&mut self, n: roxmltree::Node) {
        for c in n.children().filter(|c| c.is_element()) {
            self.element(c);
        }
    }

    fn element(&mut self, n: roxmltree::Node) {
        if !self.ours(&n) {
            self.extension(n);
            return;
        }
        match local(&n).as_str() {
            "datamode" => {
                if let Some(t) = text_of(&n) {
                    if t.eq_ignore_ascii_case("partial") {
                        self.md.data_mode = DataMode::Partial;
                    } else if t.eq_ignore_ascii_case("complete") {
                        self.md.data_mode = DataMode::Complete;
                    }
                }
            }
            "group" | "session" | "recording" => self.container(n),
            "sipsessionid" => {
                if let Some(t) = text_of(&n) {
                    self.add_id("sipSessionID", t);
                }
            }
            "call-id" | "callid" | "sipcallid" => {
                if let Some(t) = text_of(&n) {
                    self.add_id("call_id", t);
                }
            }
            "participant" => self.participant(n),
            "stream" => self.stream(n),
            "participantstreamassoc" => self.stream_assoc(n),
            "participantsessionassoc"
            | "sessionrecordingassoc"
            | "group-ref"
            | "start-time"
            | "stop-time"
            | "associate-time"
            | "disassociate-time" => {}
            _ => self.extension(n),
        }
    }

    /// The participant with this id (a fresh one when the id is new or empty).
    fn participant_mut(&mut self, id: &str) -> &mut MdParticipant {
        let found = if id.is_empty() {
            None
        } else {
            self.md.participants.iter().position(|p| p.id == id)
        };
        let idx = match found {
            Some(i) => i,
            None => {
                self.md.participants.push(MdParticipant {
                    id: id.to_owned(),
                    ..Default::default()
                });
                self.md.participants.len() - 1
            }
        };
        &mut self.md.participants[idx]
    }

    fn participant(&mut self, n: roxmltree::Node) {
        let id = attr_any(&n, &["participant_id", "id", "participantid"])
            .unwrap_or_default()
            .trim()
            .to_owned();
        let mut aors = Vec::new();
        let mut name = attr_any(&n, &["name"]).map(|s| s.trim().to_owned());
        if let Some(a) = attr_any(&n, &["aor"]).and_then(normalize_aor) {
            aors.push(a);
        }
        let mut sends = Vec::new();
        let mut receives = Vec::new();
        let mut unknown = Vec::new();
        for c in n.children().filter(|c| c.is_element()) {
            if !self.ours(&c) {
                unknown.push(c);
                continue;
            }
            match local(&c).as_str() {
                "nameid" => {
                    if let Some(a) = attr_any(&c, &["aor"]).and_then(normalize_aor) {
                        aors.push(a);
                    }
                    for cc in c.children().filter(|x| x.is_element()) {
                        match local(&cc).as_str() {
                            "name" if name.is_none() => name = text_of(&cc),
                            "aor" => aors.extend(text_of(&cc).as_deref().and_then(normalize_aor)),
                            _ => {}
                        }
                    }
                }
                "aor" => aors.extend(text_of(&c).as_deref().and_then(normalize_aor)),
                "name" => {
                    if name.is_none() {
                        name = text_of(&c);
                    }
                }
                "send" => sends.extend(ids_in(&c)),
                "recv" | "receive" => receives.extend(ids_in(&c)),
                "associate-time" | "disassociate-time" => {}
                _ => unknown.push(c),
            }
        }
        let name = name.filter(|s| !s.is_empty());
        let p = self.participant_mut(&id);
        for a in aors {
            if !p.aors.contains(&a) {
                p.aors.push(a);
            }
        }
        if name.is_some() {
            p.name = name;
        }
        union_into(&mut p.sends, sends);
        union_into(&mut p.receives, receives);
        for c in unknown {
            self.extension(c);
        }
    }

    fn stream(&mut self, n: roxmltree::Node) {
        let id = attr_any(&n, &["stream_id", "id", "streamid"])
            .unwrap_or_default()
            .trim()
            .to_owned();
        let session = attr_any(&n, &["session_id", "session"]).map(|s| s.trim().to_owned());
        let mut label = attr_any(&n, &["label"]).map(|s| s.trim().to_owned());
        let mut unknown = Vec::new();
        for c in n.children().filter(|c| c.is_element()) {
            if !self.ours(&c) {
                unknown.push(c);
                continue;
            }
            match local(&c).as_str() {
                "label" => label = text_of(&c).or(label),
                "mode" | "content-type" | "associate-time" | "disassociate-time" => {}
                _ => unknown.push(c),
            }
        }
        let label = label.filter(|l| !l.is_empty());
        match self
            .md
            .streams
            .iter_mut()
            .find(|s| !id.is_empty() && s.id == id)
        {
            Some(s) => {
                if label.is_some() {
                    s.label = label;
                }
                if session.is_some() {
                    s.session = session;
                }
            }
            None => self.md.streams.push(MdStream { id, label, session }),
        }
        for c in unknown {
            self.extension(c);
        }
    }

    fn stream_assoc(&mut self, n: roxmltree::Node) {
        let id = attr_any(&n, &["participant_id", "participant", "id"])
            .unwrap_or_default()
            .trim()
            .to_owned();
        let mut sends = Vec::new();
        let mut receives = Vec::new();
        for c in n.children().filter(|c| c.is_element()) {
            match local(&c).as_str() {
                "send" => sends.extend(ids_in(&c)),
                "recv" | "receive" => receives.extend(ids_in(&c)),
                _ => {}
            }
        }
        if id.is_empty() {
            return; // nothing to associate the streams with
        }
        let p = self.participant_mut(&id);
        union_into(&mut p.sends, sends);
        union_into(&mut p.receives, receives);
    }

    /// An element we do not interpret: keep it verbatim, look inside for
    /// original-call identifiers and vendor namespaces.
    fn extension(&mut self, n: roxmltree::Node) {
        if let Some(raw) = self.text.get(n.range()) {
            if !raw.trim().is_empty() {
                self.md.extensions.push(raw.to_owned());
            }
        }
        for d in n.descendants().filter(|d| d.is_element()) {
            let vendor = self.vendor_of(&d);
            if self.ext_vendor.is_none() {
                self.ext_vendor = vendor.map(str::to_owned);
            }
            let Some(value) = text_of(&d) else {
                continue;
            };
            let norm: String = local(&d)
                .chars()
                .filter(|c| !matches!(c, '-' | '_' | '.'))
                .collect();
            let Some((kind, default_vendor)) = marker_kind(&norm, vendor) else {
                continue;
            };
            // Acme/Avaya write `<ucid>HEX;encoding=hex</ucid>`: keep the id.
            let value = if kind == "ucid" {
                value
                    .split(';')
                    .next()
                    .unwrap_or_default()
                    .trim()
                    .to_owned()
            } else {
                value
            };
            if value.is_empty() {
                continue;
            }
            self.add_id(&kind, value);
            if self.marker_vendor.is_none() {
                self.marker_vendor = vendor.or(default_vendor).map(str::to_owned);
            }
        }
    }
}

/// Which original-call-id kind a vendor element carries, by normalised local
/// name (lower-case, no `-`/`_`/`.`) and the vendor of its namespace/prefix.
fn marker_kind(norm: &str, vendor: Option<&'static str>) -> Option<(String, Option<&'static str>)> {
    if norm.ends_with("ucid") {
        return Some(("ucid".into(), Some("avaya")));
    }
    if norm == "trackingid" || norm == "bwtrackingid" || norm == "broadworkstrackingid" {
        return Some(("broadworks_tracking_id".into(), Some("broadworks")));
    }
    if norm.ends_with("uuid") {
        return Some(match vendor {
            Some("genesys") => ("genesys_uuid".into(), Some("genesys")),
            Some(v) => (format!("{v}_uuid"), Some(v)),
            None if norm.contains("call") || norm.contains("genesys") => {
                ("genesys_uuid".into(), Some("genesys"))
            }
            None => ("uuid".into(), None),
        });
    }
    if vendor == Some("cisco") {
        if norm.contains("sessionid") {
            return Some(("cisco_session_id".into(), Some("cisco")));
        }
        if norm.ends_with("guid") || norm.ends_with("gcid") {
            return Some(("cisco_guid".into(), Some("cisco")));
        }
        if norm.ends_with("callid") {
            return Some(("cisco_call_id".into(), Some("cisco")));
        }
        return None;
    }
    if norm == "callid" || norm == "sipcallid" || norm == "originalcallid" {
        return Some(("call_id".into(), None));
    }
    None
}

/// Stream ids in a `<send>`/`<recv>` (one per element per RFC 7865;
/// whitespace-separated lists tolerated).
fn ids_in(n: &roxmltree::Node) -> Vec<String> {
    text_of(n)
        .map(|t| t.split_whitespace().map(str::to_owned).collect())
        .unwrap_or_default()
}

fn union_into(dst: &mut Vec<String>, src: Vec<String>) {
    for s in src {
        if !dst.contains(&s) {
            dst.push(s);
        }
    }
}

fn interpret(
    doc: &roxmltree::Document,
    limits: &MetadataLimits,
) -> Result<RecordingMetadata, MetadataError> {
    check_shape(doc, limits)?;
    let root = doc.root_element();
    let name = root.tag_name().name();
    if !name.eq_ignore_ascii_case("recording") {
        return Err(MetadataError::WrongRoot(name.chars().take(64).collect()));
    }
    let root_ns = root.tag_name().namespace();
    let dialect = match root_ns {
        Some(NS_RECORDING_1) => Dialect::Rfc7865,
        Some(NS_RECORDING_DRAFT) => Dialect::Draft,
        Some(NS_SIPREC_BROADWORKS) => Dialect::BroadWorks,
        _ => Dialect::Unknown,
    };
    let mut ctx = Ctx {
        text: doc.input_text(),
        root_ns,
        md: RecordingMetadata {
            dialect: Some(dialect),
            ..Default::default()
        },
        marker_vendor: None,
        ext_vendor: None,
    };
    ctx.container(root);
    let mut md = ctx.md;
    md.vendor_hint = ctx
        .marker_vendor
        .or(ctx.ext_vendor)
        .or_else(|| (dialect == Dialect::BroadWorks).then(|| "broadworks".to_owned()));
    Ok(md)
}

impl RecordingMetadata {
    /// Apply an update. `Complete` replaces everything; `Partial` merges
    /// participants and streams by id (new fields win, sends/receives are
    /// unioned), appends new original ids and extensions.
    ///
    /// A complete update that carries no vendor hint keeps the previous one;
    /// a partial update never changes `data_mode`.
    pub fn merge(&mut self, update: RecordingMetadata) {
        if update.data_mode == DataMode::Complete {
            let hint = self.vendor_hint.take();
            *self = update;
            if self.vendor_hint.is_none() {
                self.vendor_hint = hint;
            }
            return;
        }
        if update.dialect.is_some() {
            self.dialect = update.dialect;
        }
        for up in update.participants {
            match self
                .participants
                .iter_mut()
                .find(|p| !up.id.is_empty() && p.id == up.id)
            {
                Some(p) => {
                    if !up.aors.is_empty() {
                        p.aors = up.aors;
                    }
                    if up.name.is_some() {
                        p.name = up.name;
                    }
                    union_into(&mut p.sends, up.sends);
                    union_into(&mut p.receives, up.receives);
                }
                None => self.participants.push(up),
            }
        }
        for us in update.streams {
            match self
                .streams
                .iter_mut()
                .find(|s| !us.id.is_empty() && s.id == us.id)
            {
                Some(s) => {
                    if us.label.is_some() {
                        s.label = us.label;
                    }
                    if us.session.is_some() {
                        s.session = us.session;
                    }
                }
                None => self.streams.push(us),
            }
        }
        for id in update.original_call_ids {
            if !self.original_call_ids.contains(&id) {
                self.original_call_ids.push(id);
            }
        }
        for e in update.extensions {
            if !self.extensions.contains(&e) {
                self.extensions.push(e);
            }
        }
        if self.vendor_hint.is_none() {
            self.vendor_hint = update.vendor_hint;
        }
    }

    /// The participant that sends the stream carrying SDP label `label`.
    /// For a mixed stream (several senders) this is the first in document
    /// order; see [`RecordingMetadata::senders_of_label`].
    pub fn sender_of_label(&self, label: &str) -> Option<&MdParticipant> {
        self.senders_of_label(label).into_iter().next()
    }

    /// Every participant that sends the stream(s) labelled `label` (more than
    /// one for a mixed stream), in document order.
    pub fn senders_of_label(&self, label: &str) -> Vec<&MdParticipant> {
        let label = label.trim();
        let ids: Vec<&str> = self
            .streams
            .iter()
            .filter(|s| s.label.as_deref() == Some(label))
            .map(|s| s.id.as_str())
            .collect();
        self.participants
            .iter()
            .filter(|p| p.sends.iter().any(|s| ids.contains(&s.as_str())))
            .collect()
    }

    /// SDP labels of the streams participant `participant_id` sends, in
    /// stream order (streams without a label are skipped).
    pub fn labels_sent_by(&self, participant_id: &str) -> Vec<String> {
        let Some(p) = self.participants.iter().find(|p| p.id == participant_id) else {
            return Vec::new();
        };
        self.streams
            .iter()
            .filter(|s| p.sends.contains(&s.id))
            .filter_map(|s| s.label.clone())
            .collect()
    }
}
