/// EmailTemplate: a stored template's three Mustache sources (subject, HTML, optional
/// text), parsed once (swift-mustache) and checked for the variables they need.
///
/// Escaping: `{{x}}` is HTML-escaped in the HTML part and raw in the subject and text
/// parts (they are not HTML; the MIME layer encodes them for the wire). `{{{x}}}` is raw
/// everywhere.
///
/// Required variables: every `{{name}}`/`{{{name}}}`/`{{&name}}` outside any section must
/// be present (and not null) in `data`, else the request is a 422 naming them (SPEC §4).
/// Names used inside `{{#items}}…{{/items}}` resolve against the section's element and are
/// not checked; section names themselves may be absent (a missing section renders nothing,
/// the usual way to write a conditional). Dotted names must resolve along the path.
/// Limitations: custom delimiters (`{{=<% %>=}}`), partials and blocks are refused at add
/// time — a stored template must be self-contained.
import JSON
import Mustache

public struct TemplateError: Error, Sendable, Equatable, CustomStringConvertible {
    public var part: String
    public var reason: String
    public var description: String { "\(part): \(reason)" }
}

public struct EmailTemplate: Sendable {
    public let identifier: String
    let subject: MustacheTemplate
    let html: MustacheTemplate
    let text: MustacheTemplate?
    /// The same parts on the fast path, when all of them are flat (FlatTemplate).
    let flat: (subject: FlatTemplate, html: FlatTemplate, text: FlatTemplate?)?
    /// Variables needed outside sections, in first-use order, across all parts.
    public let requiredVariables: [String]

    public init(identifier: String, subject: String, html: String, text: String?) throws(TemplateError) {
        self.identifier = identifier
        var required: [String] = []
        for (part, source) in [("subject", subject), ("html", html), ("text", text ?? "")] {
            for name in try TemplateScanner.topLevelVariables(source, part: part) where !required.contains(name) {
                required.append(name)
            }
        }
        requiredVariables = required
        self.subject = try EmailTemplate.compile(subject, part: "subject", raw: true)
        self.html = try EmailTemplate.compile(html, part: "html", raw: false)
        self.text = try text.map { (t) throws(TemplateError) -> MustacheTemplate in try EmailTemplate.compile(t, part: "text", raw: true) }
        if let s = FlatTemplate(subject, html: false), let h = FlatTemplate(html, html: true) {
            if let text {
                flat = FlatTemplate(text, html: false).map { (s, h, $0) }
            } else {
                flat = (s, h, nil)
            }
        } else {
            flat = nil
        }
    }

    static func compile(_ source: String, part: String, raw: Bool) throws(TemplateError) -> MustacheTemplate {
        do {
            // The pragma switches swift-mustache's escaping off for non-HTML parts.
            return try MustacheTemplate(string: raw ? "{{%CONTENT_TYPE:TEXT}}" + source : source)
        } catch {
            throw TemplateError(part: part, reason: "not a valid Mustache template (\(error))")
        }
    }

    /// Names in `requiredVariables` that `data` lacks (or holds as null).
    public func missingVariables(in data: JSONValue) -> [String] {
        requiredVariables.filter { !TemplateData.has(path: $0, in: data) }
    }

    public struct Rendered: Sendable, Equatable {
        public var subject: String
        public var html: String
        public var text: String?
    }

    /// Renders all parts with `data` (call `missingVariables` first).
    public func render(_ data: JSONValue) -> Rendered {
        if let flat, case .object = data, let s = flat.subject.render(data), let h = flat.html.render(data) {
            if let t = flat.text {
                if let text = t.render(data) { return Rendered(subject: s, html: h, text: text) }
            } else {
                return Rendered(subject: s, html: h, text: nil)
            }
        }
        return renderWithMustache(data)
    }

    /// swift-mustache's rendering of all parts (what the fast path must equal).
    func renderWithMustache(_ data: JSONValue) -> Rendered {
        let context = TemplateData.context(data)
        return Rendered(subject: subject.render(context), html: html.render(context), text: text?.render(context))
    }
}

/// Turns JSON into what swift-mustache renders: objects → [String: Any], arrays → [Any],
/// numbers → their text as sent (so "12.50" stays "12.50"), booleans → Bool, null → absent.
enum TemplateData {
    static func context(_ v: JSONValue) -> Any {
        convert(v) ?? [String: Any]()
    }

    static func convert(_ v: JSONValue) -> Any? {
        switch v {
        case .null: return nil
        case .bool(let b): return b
        case .number(let n): return n
        case .string(let s): return s
        case .array(let items): return items.compactMap { convert($0) }
        case .object(let members):
            var d: [String: Any] = [:]
            for m in members { if let c = convert(m.value) { d[m.key] = c } }
            return d
        }
    }

    static func has(path: String, in data: JSONValue) -> Bool {
        if path == "." { return true }
        var current = data
        for part in path.split(separator: ".", omittingEmptySubsequences: false) {
            guard let next = current[String(part)], next != .null else { return false }
            current = next
        }
        return true
    }
}
