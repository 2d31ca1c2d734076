/// HTMLText: a readable plain-text part derived from an HTML body when no text template
/// is given — tags dropped, `<script>`/`<style>`/`<head>`/`<title>` content dropped, block
/// elements and `<br>` as line breaks, list items as "- ", links as "text (href)", the
/// common entities decoded, runs of blank space collapsed. Not a renderer; a fallback that
/// reads well. Works on UTF-8 bytes (it runs once per accepted message: Character-by-
/// Character String walking cost more than the rest of the request together).
public enum HTMLText {
    static let blockTags: [TagName] = ["p", "div", "br", "tr", "h1", "h2", "h3", "h4", "h5", "h6", "ul", "ol", "table",
                                       "blockquote", "hr", "section", "article", "header", "footer"].map(TagName.init)
    static let skipTags: [TagName] = ["script", "style", "head", "title"].map(TagName.init)
    static let listItem = TagName("li")
    static let anchor = TagName("a")

    /// A tag's lower-cased name packed in two words (no allocation per tag); names longer than
    /// 16 bytes match no tag we treat specially.
    struct TagName: Equatable {
        var low: UInt64 = 0
        var high: UInt64 = 0
        var count = 0

        init() {}
        init(_ name: String) { for b in name.utf8 { append(b) } }

        mutating func append(_ b: UInt8) {
            switch count {
            case 0..<8: low |= UInt64(b) << (8 * count)
            case 8..<16: high |= UInt64(b) << (8 * (count - 8))
            default: count = 16   // stays "too long": 17 after the increment
            }
            count += 1
        }
    }

    public static func plainText(fromHTML html: String) -> String {
        let p = Array(html.utf8)
        var out: [UInt8] = []
        out.reserveCapacity(p.count)
        var i = 0
        var skipUntil: TagName?
        var pendingHref: [UInt8]?
        while i < p.count {
            let c = p[i]
            if c == UInt8(ascii: "<") {
                guard let close = p[i...].firstIndex(of: UInt8(ascii: ">")) else { break }
                let tag = p[(i + 1)..<close]
                i = close + 1
                let isEnd = tag.first == UInt8(ascii: "/")
                var name = TagName()
                for b in tag.drop(while: { $0 == UInt8(ascii: "/") }) {
                    guard (b >= 0x30 && b <= 0x39) || ((b | 0x20) >= 0x61 && (b | 0x20) <= 0x7A) else { break }
                    name.append(b | 0x20)
                }
                if let s = skipUntil {
                    if isEnd && name == s { skipUntil = nil }
                    continue
                }
                if tag.first == UInt8(ascii: "!") { continue }
                if !isEnd && skipTags.contains(name) { skipUntil = name; continue }
                if name == listItem && !isEnd {
                    out.append(contentsOf: [0x0A, 0x2D, 0x20])
                    continue
                }
                if name == anchor {
                    if isEnd {
                        if let h = pendingHref { out.append(contentsOf: [0x20, 0x28]); out.append(contentsOf: h); out.append(0x29) }
                        pendingHref = nil
                    } else {
                        pendingHref = attribute(Array("href=".utf8), in: Array(tag))
                    }
                    continue
                }
                if blockTags.contains(name) { out.append(0x0A) }
                continue
            }
            if skipUntil != nil { i += 1; continue }
            if c == UInt8(ascii: "&"), let semi = p[i..<min(p.count, i + 10)].firstIndex(of: UInt8(ascii: ";")),
               let decoded = decode(p[(i + 1)..<semi]) {
                out.append(contentsOf: decoded)
                i = semi + 1
                continue
            }
            out.append(c)
            i += 1
        }
        // Collapse spaces within lines, and runs of blank lines.
        var result: [UInt8] = []
        result.reserveCapacity(out.count)
        var lineStart = true
        var pendingSpace = false
        var blankLines = 0
        for b in out {
            switch b {
            case 0x0A:
                if lineStart { blankLines += 1 } else { blankLines = 0 }
                if blankLines <= 1 && !result.isEmpty { result.append(0x0A) }
                lineStart = true
                pendingSpace = false
            case 0x20, 0x09, 0x0D:
                if !lineStart { pendingSpace = true }
            default:
                if pendingSpace { result.append(0x20) }
                pendingSpace = false
                lineStart = false
                blankLines = 0
                result.append(b)
            }
        }
        while result.last == 0x0A { result.removeLast() }
        return String(decoding: result, as: UTF8.self)
    }

    static func attribute(_ key: [UInt8], in tag: [UInt8]) -> [UInt8]? {
        let lower = tag.map { ($0 >= 0x41 && $0 <= 0x5A) ? $0 | 0x20 : $0 }
        guard let r = lower.firstRange(of: key) else { return nil }
        var rest = tag[r.upperBound...]
        if let q = rest.first, q == 0x22 || q == 0x27 {
            rest = rest.dropFirst()
            return Array(rest.prefix(while: { $0 != q }))
        }
        return Array(rest.prefix(while: { $0 != 0x20 && $0 != 0x3E }))
    }

    static func decode(_ entity: ArraySlice<UInt8>) -> [UInt8]? {
        switch String(decoding: entity, as: UTF8.self) {
        case "amp": return [0x26]
        case "lt": return [0x3C]
        case "gt": return [0x3E]
        case "quot": return [0x22]
        case "apos", "#39": return [0x27]
        case "nbsp": return [0x20]
        case let e:
            var v: UInt32?
            if e.hasPrefix("#x") || e.hasPrefix("#X") { v = UInt32(e.dropFirst(2), radix: 16) } else if e.hasPrefix("#") { v = UInt32(e.dropFirst()) }
            guard let v, let u = Unicode.Scalar(v) else { return nil }
            return Array(String(Character(u)).utf8)
        }
    }
}
