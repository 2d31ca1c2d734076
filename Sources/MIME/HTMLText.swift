/// HTMLText: a readable plain-text part derived from an HTML body when no text template
/// is given — tags dropped, `<script>`/`<style>` content dropped, block elements and `<br>`
/// as line breaks, list items as "- ", links as "text (href)", the common entities decoded,
/// runs of blank space collapsed. Not a renderer; a fallback that reads well.
public enum HTMLText {
    static let blockTags: Set<String> = ["p", "div", "br", "tr", "h1", "h2", "h3", "h4", "h5", "h6", "ul", "ol", "table", "blockquote", "hr", "section", "article", "header", "footer"]

    public static func plainText(fromHTML html: String) -> String {
        var out = ""
        var i = html.startIndex
        var skipUntil: String?
        var pendingHref: String?
        while i < html.endIndex {
            let c = html[i]
            if c == "<" {
                guard let close = html[i...].firstIndex(of: ">") else { break }
                let tag = html[html.index(after: i)..<close]
                i = html.index(after: close)
                let isEnd = tag.hasPrefix("/")
                let name = String(tag.drop(while: { $0 == "/" }).prefix(while: { $0.isLetter || $0.isNumber })).lowercased()
                if let s = skipUntil {
                    if isEnd && name == s { skipUntil = nil }
                    continue
                }
                if tag.hasPrefix("!") { continue }
                if !isEnd && (name == "script" || name == "style" || name == "head" || name == "title") { skipUntil = name; continue }
                if name == "li" && !isEnd { out += "\n- "; continue }
                if name == "a" {
                    if isEnd {
                        if let h = pendingHref { out += " (\(h))" }
                        pendingHref = nil
                    } else {
                        pendingHref = attribute("href", in: tag)
                    }
                    continue
                }
                if blockTags.contains(name) { out += "\n" }
                continue
            }
            if skipUntil != nil { i = html.index(after: i); continue }
            if c == "&", let semi = html[i...].prefix(10).firstIndex(of: ";") {
                let entity = String(html[html.index(after: i)..<semi])
                if let decoded = decode(entity) {
                    out.append(decoded)
                    i = html.index(after: semi)
                    continue
                }
            }
            out.append(c)
            i = html.index(after: i)
        }
        // Collapse spaces within lines and blank-line runs.
        var lines: [String] = []
        for raw in out.split(separator: "\n", omittingEmptySubsequences: false) {
            let words = raw.split(whereSeparator: { $0 == " " || $0 == "\t" || $0 == "\r" })
            lines.append(words.joined(separator: " "))
        }
        var result: [String] = []
        for l in lines {
            if l.isEmpty && (result.last?.isEmpty ?? true) { continue }
            result.append(l)
        }
        while result.last?.isEmpty == true { result.removeLast() }
        return result.joined(separator: "\n")
    }

    static func attribute(_ name: String, in tag: Substring) -> String? {
        let lower = tag.lowercased()
        guard let r = lower.firstRange(of: name + "=") else { return nil }
        var rest = tag[tag.index(tag.startIndex, offsetBy: lower.distance(from: lower.startIndex, to: r.upperBound))...]
        if let q = rest.first, q == "\"" || q == "'" {
            rest = rest.dropFirst()
            return String(rest.prefix(while: { $0 != q }))
        }
        return String(rest.prefix(while: { $0 != " " && $0 != ">" }))
    }

    static func decode(_ entity: String) -> Character? {
        switch entity {
        case "amp": return "&"
        case "lt": return "<"
        case "gt": return ">"
        case "quot": return "\""
        case "apos", "#39": return "'"
        case "nbsp": return " "
        default:
            if entity.hasPrefix("#x") || entity.hasPrefix("#X"), let v = UInt32(entity.dropFirst(2), radix: 16), let u = Unicode.Scalar(v) { return Character(u) }
            if entity.hasPrefix("#"), let v = UInt32(entity.dropFirst()), let u = Unicode.Scalar(v) { return Character(u) }
            return nil
        }
    }
}
