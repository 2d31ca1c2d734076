/// `template add|list`: templates are parsed and checked before they are stored, so a
/// malformed one is refused at add time, not at send time.
#if canImport(Glibc)
import Glibc
#endif
import ArgumentParser
import Store
import Templates

func readTextFile(_ path: String) throws -> String {
    var st = stat()
    if stat(path, &st) == 0 && (st.st_mode & S_IFMT) == S_IFDIR {
        throw usageError("\(path) is a folder, not a file")
    }
    guard let f = fopen(path, "rb") else {
        throw usageError("cannot read \(path): \(String(cString: strerror(errno)))")
    }
    defer { fclose(f) }
    var bytes: [UInt8] = []
    var buf = [UInt8](repeating: 0, count: 65536)
    while true {
        let n = fread(&buf, 1, buf.count, f)
        if n <= 0 { break }
        bytes.append(contentsOf: buf[0..<n])
        if bytes.count > 4 << 20 { throw usageError("\(path) is larger than 4 MiB") }
    }
    guard let s = String(validating: bytes, as: UTF8.self) else { throw usageError("\(path) is not UTF-8 text") }
    guard s.contains(where: { !$0.isWhitespace }) else { throw usageError("\(path) is empty: a template needs a body") }
    return s
}

struct TemplateCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "template", abstract: "Add, list and remove message templates (Mustache).",
        subcommands: [Add.self, List.self, Remove.self])

    struct Add: ParsableCommand {
        static let configuration = CommandConfiguration(abstract: "Add or replace a template.")
        @Option(help: databaseHelp) var db = defaultDatabase
        @Option(help: "What API callers pass as template_identifier.") var identifier: String
        @Option(help: "Subject template, e.g. \"Invoice {{invoice_number}}\".") var subject: String
        @Option(name: .customLong("html-file"), help: "HTML body template file.") var htmlFile: String
        @Option(name: .customLong("text-file"), help: "Plain-text body template file (else derived from the HTML).") var textFile: String?

        func run() throws {
            guard !identifier.isEmpty, identifier.count <= 100,
                  identifier.unicodeScalars.allSatisfy({ $0.properties.isAlphabetic || ("0"..."9").contains($0) || "_-.".unicodeScalars.contains($0) }) else {
                throw usageError("--identifier must be 1–100 letters, digits, _ - or .")
            }
            if subject.unicodeScalars.contains(where: { $0 == "\r" || $0 == "\n" }) { throw usageError("--subject must be one line") }
            let html = try readTextFile(htmlFile)
            let text = try textFile.map(readTextFile)
            let template: EmailTemplate
            do {
                template = try EmailTemplate(identifier: identifier, subject: subject, html: html, text: text)
            } catch {
                throw usageError("template \(identifier): \(error)")
            }
            let database = try openDatabase(db)
            try adminStep("template add") {
                try database.putTemplate(identifier: identifier, subject: subject, html: html, text: text, now: nowMilliseconds())
            }
            let vars = template.requiredVariables
            print("stored template \(identifier)" + (vars.isEmpty ? "" : " (needs: \(vars.joined(separator: ", ")))"))
        }
    }

    struct Remove: ParsableCommand {
        static let configuration = CommandConfiguration(
            abstract: "Remove a template. Messages already accepted with it are unaffected: their bytes were built at acceptance.")
        @Option(help: databaseHelp) var db = defaultDatabase
        @Argument(help: "The template's identifier.") var identifier: String

        func run() throws {
            try changeNamed(db, "template remove", missing: "no template \"\(identifier)\"", done: "removed template \(identifier)") {
                try $0.removeTemplate(identifier: identifier)
            }
        }
    }

    struct List: ParsableCommand {
        static let configuration = CommandConfiguration(abstract: "List templates.")
        @Option(help: databaseHelp) var db = defaultDatabase

        func run() throws {
            let database = try openDatabase(db)
            let all = try adminStep("template list") { try database.templates() }
            if all.isEmpty { print("no templates"); return }
            for t in all {
                let needs = (try? EmailTemplate(identifier: t.identifier, subject: t.subject, html: t.html, text: t.text))?.requiredVariables ?? []
                print("\(t.identifier)\t\(t.subject)\t\(t.text == nil ? "html" : "html+text")\tneeds: \(needs.joined(separator: ","))\tupdated \(formatTime(t.updatedAt))")
            }
        }
    }
}
