/// FlatTemplate: the fast path for the templates transactional mail mostly has — text and
/// variables only (`{{name}}`, `{{{name}}}`, `{{&name}}`, dotted names), no sections or
/// comments. It renders what swift-mustache renders for the same source and data (the tests
/// compare the two over a table and random cases) without its dynamic casts: swift-mustache
/// looks every variable up through `Any` (five protocol casts per name, a conformance-cache
/// probe each) and escapes HTML one Character at a time through a dictionary — about 10 µs
/// of a templated send's CPU, as much as its MIME build.
///
/// Anything else — a section, a comment, a name outside `[A-Za-z0-9_-]` segments, a raw part
/// whose first line is blank (the content-type pragma in front of it could make that line
/// standalone), a last line of blanks (swift-mustache drops it), a line break other than LF
/// and CR — is not flat: `init` returns nil and swift-mustache renders the template. A
/// variable that resolves to an array or an object makes `render` return nil, and the caller
/// renders with swift-mustache too.
import JSON

struct FlatTemplate: Sendable {
    enum Segment: Sendable, Equatable {
        case text(String)
        case variable(path: [String], escaped: Bool)
    }

    let segments: [Segment]
    /// HTML part: `{{x}}` is HTML-escaped (swift-mustache's default content type). Subject and
    /// text parts render every variable raw (the `CONTENT_TYPE:TEXT` pragma).
    let html: Bool

    init?(_ source: String, html: Bool) {
        self.html = html
        if !html, FlatTemplate.startsWithBlankLine(source) { return nil }
        if FlatTemplate.endsWithBlankLine(source) || FlatTemplate.hasOtherLineBreaks(source) { return nil }
        var segments: [Segment] = []
        var rest = Substring(source)
        while let open = rest.range(of: "{{") {
            if open.lowerBound > rest.startIndex { segments.append(.text(String(rest[..<open.lowerBound]))) }
            rest = rest[open.upperBound...]
            var escaped = html
            let closer: String
            if rest.hasPrefix("{") {
                rest = rest.dropFirst()
                closer = "}}}"
                escaped = false
            } else if rest.hasPrefix("&") {
                rest = rest.dropFirst()
                closer = "}}"
                escaped = false
            } else {
                closer = "}}"
            }
            guard let close = rest.range(of: closer) else { return nil }
            let name = TemplateScanner.trim(rest[..<close.lowerBound])
            rest = rest[close.upperBound...]
            guard let path = FlatTemplate.path(name) else { return nil }
            segments.append(.variable(path: path, escaped: escaped))
        }
        if !rest.isEmpty { segments.append(.text(String(rest))) }
        self.segments = segments
    }

    /// The rendered text, or nil when a variable's value is an array or an object (what
    /// swift-mustache prints for those is its own; it renders them).
    func render(_ data: JSONValue) -> String? {
        var out = ""
        for segment in segments {
            switch segment {
            case .text(let t):
                out += t
            case .variable(let path, let escaped):
                var value = data
                var found = true
                for name in path {
                    guard case .object(let members) = value,
                          let member = members.last(where: { $0.key == name }) else { found = false; break }
                    value = member.value
                }
                guard found else { continue }   // swift-mustache renders a missing name as nothing
                let text: String
                switch value {
                case .null: continue
                case .string(let s): text = s
                case .number(let n): text = n
                case .bool(let b): text = b ? "true" : "false"
                case .array, .object: return nil
                }
                if escaped { FlatTemplate.appendEscaped(text, to: &out) } else { out += text }
            }
        }
        return out
    }

    /// swift-mustache's `htmlEscape`: `<`, `>`, `&`, `"`, `'` compared as Characters (so an
    /// `&` carrying a combining mark stays as it is, as there).
    static func appendEscaped(_ s: String, to out: inout String) {
        var special = false
        var ascii = true
        for b in s.utf8 {
            if b == 0x3C || b == 0x3E || b == 0x26 || b == 0x22 || b == 0x27 { special = true }
            if b >= 0x80 { ascii = false }
        }
        guard special else { out += s; return }
        if ascii {
            var bytes: [UInt8] = []
            bytes.reserveCapacity(s.utf8.count + 16)
            for b in s.utf8 {
                switch b {
                case 0x3C: bytes += Array("&lt;".utf8)
                case 0x3E: bytes += Array("&gt;".utf8)
                case 0x26: bytes += Array("&amp;".utf8)
                case 0x22: bytes += Array("&quot;".utf8)
                case 0x27: bytes += Array("&#39;".utf8)
                default: bytes.append(b)
                }
            }
            out += String(decoding: bytes, as: UTF8.self)
            return
        }
        for c in s {
            switch c {
            case "<": out += "&lt;"
            case ">": out += "&gt;"
            case "&": out += "&amp;"
            case "\"": out += "&quot;"
            case "'": out += "&#39;"
            default: out.append(c)
            }
        }
    }

    /// A name the fast path takes: dot-separated segments of ASCII letters, digits, `_` and
    /// `-`, none empty (so not `.`, `.a`, `a.` or `a..b`).
    static func path(_ name: String) -> [String]? {
        guard !name.isEmpty, name.utf8.count <= 128 else { return nil }
        let parts = name.split(separator: ".", omittingEmptySubsequences: false)
        for p in parts {
            guard !p.isEmpty, p.utf8.allSatisfy({ b in
                (b >= 0x30 && b <= 0x39) || (b >= 0x41 && b <= 0x5A) || (b >= 0x61 && b <= 0x7A) || b == 0x5F || b == 0x2D
            }) else { return nil }
        }
        return parts.map(String.init)
    }

    /// True when the first line (up to a line break or the end) holds only spaces and tabs
    /// and the source is not empty.
    static func startsWithBlankLine(_ s: String) -> Bool {
        for b in s.utf8 {
            if b == 0x0A || b == 0x0D { return true }
            if b != 0x20 && b != 0x09 { return false }
        }
        return !s.isEmpty
    }

    /// True when the last line is spaces and tabs only (swift-mustache drops such a tail: it
    /// reads a line's leading blanks ahead of its first tag, and the source ends first).
    static func endsWithBlankLine(_ s: String) -> Bool {
        var blanks = 0
        for b in s.utf8.reversed() {
            if b == 0x20 || b == 0x09 { blanks += 1; continue }
            return blanks > 0 && (b == 0x0A || b == 0x0D)
        }
        return blanks > 0
    }

    /// Line breaks other than LF and CR (VT, FF, NEL, LS, PS): Swift's `isNewline`, which
    /// swift-mustache's line handling uses, counts them too; the fast path does not take them.
    static func hasOtherLineBreaks(_ s: String) -> Bool {
        s.unicodeScalars.contains { $0 == "\u{0B}" || $0 == "\u{0C}" || $0 == "\u{85}" || $0 == "\u{2028}" || $0 == "\u{2029}" }
    }
}
