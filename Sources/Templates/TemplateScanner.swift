/// TemplateScanner: finds the variables a Mustache source uses outside sections (the
/// ones `data` must provide), and refuses what a stored template may not use. A small
/// tag lexer over the default `{{ }}` delimiters (Mustache spec: tags, sections, inverted
/// sections, comments, triple mustaches, `&`, partials `>`, set-delimiter `=`).
enum TemplateScanner {
    static func topLevelVariables(_ source: String, part: String) throws(TemplateError) -> [String] {
        var names: [String] = []
        var depth = 0
        var stack: [String] = []
        var rest = Substring(source)
        while let open = rest.range(of: "{{") {
            rest = rest[open.upperBound...]
            var triple = false
            if rest.hasPrefix("{") {
                triple = true
                rest = rest.dropFirst()
            }
            let closer = triple ? "}}}" : "}}"
            guard let close = rest.range(of: closer) else { throw TemplateError(part: part, reason: "unclosed tag") }
            var tag = rest[..<close.lowerBound]
            rest = rest[close.upperBound...]
            let sigil = triple ? nil : tag.first
            switch sigil {
            case "!":
                continue
            case "#", "^":
                tag = tag.dropFirst()
                let name = trim(tag)
                guard valid(name) else { throw TemplateError(part: part, reason: "bad section name \"\(name)\"") }
                stack.append(name)
                depth += 1
            case "/":
                let name = trim(tag.dropFirst())
                guard let top = stack.popLast(), top == name else {
                    throw TemplateError(part: part, reason: "section {{/\(name)}} closes nothing open")
                }
                depth -= 1
            case ">", "<", "$", "=", "%":
                throw TemplateError(part: part, reason: "partials, blocks, pragmas and custom delimiters are not supported")
            case "&":
                let name = trim(tag.dropFirst())
                guard valid(name) else { throw TemplateError(part: part, reason: "bad variable name \"\(name)\"") }
                if depth == 0 && !names.contains(name) { names.append(name) }
            default:
                let name = trim(tag)
                guard valid(name) else { throw TemplateError(part: part, reason: "bad variable name \"\(name)\"") }
                if depth == 0 && !names.contains(name) && name != "." { names.append(name) }
            }
        }
        if let open = stack.last { throw TemplateError(part: part, reason: "section {{#\(open)}} is never closed") }
        return names
    }

    static func trim(_ s: Substring) -> String {
        var t = s
        while let f = t.first, f == " " || f == "\t" { t = t.dropFirst() }
        while let l = t.last, l == " " || l == "\t" { t = t.dropLast() }
        return String(t)
    }

    static func valid(_ name: String) -> Bool {
        !name.isEmpty && name.count <= 128
            && name.unicodeScalars.allSatisfy { $0.properties.isAlphabetic || ("0"..."9").contains($0) || $0 == "_" || $0 == "." || $0 == "-" }
    }
}
