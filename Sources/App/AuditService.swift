/// AuditService: the sent-mail audit over HTTP (SPEC §4) — `GET /api/audit` (keyset pages,
/// filters) and `GET /api/audit/{id}` (one entry with its rendered message read back into
/// headers, text and HTML, and its delivery attempts), both for tokens with `audit-read`.
///
/// `GET /audit` (and its script and style sheet) serves the page of `AuditPage`.
///
/// Each request is one bounded indexed statement on the loop (see `Database+Audit`): a page
/// reads at most 201 rows without their message bytes; a detail reads one row and its attempts.
import AuditAPI
import AuditPage
import Auth
import HTTP1
import HTTPServer
import JSON
import Logging
import MIME
import SendAPI
import Store

public final class AuditService {
    let db: Database
    let directory: Directory
    var logger: Logger

    static let jsonHeaders = HTTPHeaders([(name: "Content-Type", value: "application/json"), (name: "Cache-Control", value: "no-store")])

    init(db: Database, directory: Directory, logger: Logger) {
        self.db = db
        self.directory = directory
        self.logger = logger
    }

    func install(on router: Router) {
        router.add("GET", "/api/audit") { [unowned self] request, _ in self.answer { try self.list(request) } }
        router.addPrefix("GET", "/api/audit/") { [unowned self] request, _ in self.answer { try self.detail(request) } }
        // The page for people: static files compiled into the binary.
        for (path, file) in AuditPage.files {
            var headers = HTTPHeaders([(name: "Content-Type", value: file.contentType)])
            for (n, v) in AuditPage.securityHeaders { headers.add(name: n, value: v) }
            let response = HTTPResponse(status: 200, headers: headers, body: file.bytes)
            router.add("GET", path) { _, _ in .respond(response) }
        }
    }

    func answer(_ body: () throws -> HTTPResponse) -> HandlerResult {
        do {
            return .respond(try body())
        } catch let e as APIError {
            return .respond(e.response)
        } catch {
            logger.error("audit: \(error)")
            return .respond(APIError.internalError.response)
        }
    }

    // MARK: GET /api/audit

    func list(_ request: HTTPRequest) throws -> HTTPResponse {
        _ = try directory.authenticate(request.head.headers, ability: Ability.auditRead)
        let query: AuditQuery
        switch AuditQuery.parse(request.head.query) {
        case .success(let q): query = q
        case .failure(let problems): throw APIError.validation(problems.fields)
        }
        let filter = AuditFilter(recipient: query.recipient, status: query.status, since: query.since, until: query.until)
        // One row more than asked tells whether another page follows (no empty last page).
        var rows = try db.auditPage(filter, limit: query.limit + 1,
                                    after: query.cursor.map { AuditPosition(acceptedAt: $0.acceptedAt, id: $0.id) })
        var next: String?
        if rows.count > query.limit {
            rows.removeLast()
            if let last = rows.last { next = AuditCursor(acceptedAt: last.acceptedAt, id: last.id).encoded }
        }
        var out = "{\"ok\":true,\"data\":["
        out.reserveCapacity(128 + rows.count * 512)
        for (i, e) in rows.enumerated() {
            if i > 0 { out += "," }
            AuditService.appendEntry(e, to: &out)
            out += "}"
        }
        out += "],\"next\":"
        if let next { JSONText.appendString(next, to: &out) } else { out += "null" }
        out += "}"
        return HTTPResponse(status: 200, headers: AuditService.jsonHeaders, body: Array(out.utf8))
    }

    // MARK: GET /api/audit/{id}

    func detail(_ request: HTTPRequest) throws -> HTTPResponse {
        _ = try directory.authenticate(request.head.headers, ability: Ability.auditRead)
        let path = request.head.path
        let idText = path.dropFirst("/api/audit/".count)
        guard idText.utf8.count <= 18, idText.utf8.allSatisfy({ $0 >= 0x30 && $0 <= 0x39 }), let id = Int64(idText), id > 0,
              let entry = try db.auditEntry(id: id)
        else {
            throw APIError.noSuchResource("No audit entry \(String(idText.prefix(40)).debugDescription).")
        }
        let attempts = try db.deliveryAttempts(messageID: id)
        let message = MessageReader.read(entry.raw)
        var out = "{\"ok\":true,\"data\":"
        out.reserveCapacity(256 + entry.raw.count * 3)
        AuditService.appendEntry(entry, to: &out)
        out += ",\"attempts\":["
        for (i, a) in attempts.enumerated() {
            if i > 0 { out += "," }
            out += "{\"at\":"
            JSONText.appendString(RFC3339.format(milliseconds: a.at), to: &out)
            out += ",\"outcome\":"
            JSONText.appendString(a.outcome, to: &out)
            out += ",\"reply\":"
            JSONText.appendString(a.reply, to: &out)
            out += "}"
        }
        out += "],\"message\":{\"headers\":["
        for (i, h) in message.headers.enumerated() {
            if i > 0 { out += "," }
            out += "{\"name\":"
            JSONText.appendString(h.name, to: &out)
            out += ",\"value\":"
            JSONText.appendString(h.value, to: &out)
            out += "}"
        }
        out += "],\"text\":"
        appendOptional(message.text, to: &out)
        out += ",\"html\":"
        appendOptional(message.html, to: &out)
        out += ",\"raw\":"
        JSONText.appendString(String(decoding: entry.raw, as: UTF8.self), to: &out)
        out += "}}}"
        return HTTPResponse(status: 200, headers: AuditService.jsonHeaders, body: Array(out.utf8))
    }

    func appendOptional(_ s: String?, to out: inout String) {
        if let s { JSONText.appendString(s, to: &out) } else { out += "null" }
    }

    /// The audit fields of SPEC §4 except the message, as an unclosed JSON object.
    static func appendEntry(_ e: AuditEntry, to out: inout String) {
        out += "{\"id\":\(e.id),\"accepted_at\":"
        JSONText.appendString(RFC3339.format(milliseconds: e.acceptedAt), to: &out)
        out += ",\"sent_at\":"
        if let s = e.sentAt { JSONText.appendString(RFC3339.format(milliseconds: s), to: &out) } else { out += "null" }
        out += ",\"status\":"
        JSONText.appendString(e.status, to: &out)
        out += ",\"to\":"
        JSONText.appendString(e.recipient, to: &out)
        out += ",\"subject\":"
        JSONText.appendString(e.subject, to: &out)
        out += ",\"mailbox\":"
        JSONText.appendString(e.mailboxName, to: &out)
        out += ",\"mailbox_address\":"
        JSONText.appendString(e.mailboxAddress, to: &out)
        out += ",\"template\":"
        if let t = e.template { JSONText.appendString(t, to: &out) } else { out += "null" }
        out += ",\"message_id\":"
        JSONText.appendString(e.messageID, to: &out)
        out += ",\"token_name\":"
        JSONText.appendString(e.tokenName, to: &out)
        out += ",\"idempotency_key\":"
        JSONText.appendString(e.idempotencyKey, to: &out)
        out += ",\"attempt_count\":\(e.attempts),\"last_reply\":"
        if let r = e.lastReply { JSONText.appendString(r, to: &out) } else { out += "null" }
    }
}
