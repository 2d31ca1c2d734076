/// AuditService: the sent-mail audit over HTTP (SPEC §4) — `GET /api/audit` (keyset pages,
/// filters) and `GET /api/audit/{id}` (one entry with its rendered message read back into
/// headers, text and HTML, and its delivery attempts), both for tokens with `audit-read`.
///
/// `GET /audit` (and its script and style sheet) serves the page of `AuditPage`.
///
/// Each request is bounded (see `Database+Audit`): a page is one indexed statement of at most
/// 201 rows without their message bytes (1 001 with `count=true`: the count is capped, never
/// the whole table); a search (`q`) reads at most `AuditQuery.searchBudget` rows in a few such
/// statements and checks them here (`AuditScan`); a detail reads one row and its attempts. The store
/// answers at once (SQLite) or in a later iteration (PostgreSQL): the response follows then.
import AuditAPI
import AuditPage
import Auth
import HTTP1
import HTTPServer
import JSON
import Logging
import MIME
import Reactor
import SendAPI
import Store

public final class AuditService {
    let store: ServerStore
    let directory: Directory
    var logger: Logger
    /// Runs a search's next read on a later loop iteration: SQLite answers inside the call, and
    /// a search that reads its whole budget takes ~25 ms at 1 000 000 rows — in chunks with the
    /// loop's other work between them, no connection waits for all of it (PostgreSQL's answers
    /// come in later iterations anyway).
    let later: Later?

    static let detailPrefix = "/api/audit/"
    static let jsonHeaders = HTTPHeaders([(name: "Content-Type", value: "application/json"), (name: "Cache-Control", value: "no-store")])

    init(store: ServerStore, directory: Directory, logger: Logger, reactor: Reactor? = nil) {
        self.store = store
        self.directory = directory
        self.logger = logger
        later = reactor.map(Later.init)
    }

    /// Closures run on the next loop iteration (one zero-delay timer for all of them).
    final class Later: DeadlineHandler {
        let reactor: Reactor
        var timer: TimerHandle?
        var pending: [() -> Void] = []

        init(_ reactor: Reactor) { self.reactor = reactor }

        func run(_ work: @escaping () -> Void) {
            pending.append(work)
            let t = timer ?? reactor.makeTimer(self)
            timer = t
            if !reactor.isArmed(t) { reactor.arm(t, after: .zero) }
        }

        func onDeadline() {
            let due = pending
            pending.removeAll()
            for work in due { work() }
        }
    }

    func install(on router: Router) {
        router.add("GET", "/api/audit") { [unowned self] request, responder in
            self.answer(responder) { done in try self.list(request, done) }
        }
        router.addPrefix("GET", AuditService.detailPrefix) { [unowned self] request, responder in
            self.answer(responder) { done in try self.detail(request, done) }
        }
        // The page for people: static files compiled into the binary.
        for (path, file) in AuditPage.files {
            var headers = HTTPHeaders([(name: "Content-Type", value: file.contentType)])
            for (n, v) in AuditPage.securityHeaders { headers.add(name: n, value: v) }
            let response = HTTPResponse(status: 200, headers: headers, body: file.bytes)
            router.add("GET", path) { _, _ in .respond(response) }
        }
    }

    /// Runs `body`, which finishes by calling `done` with the response or the error — before
    /// returning (SQLite) or later (PostgreSQL): the response goes out either way.
    func answer(_ responder: Responder, _ body: (@escaping (Result<HTTPResponse, Error>) -> Void) throws -> Void) -> HandlerResult {
        var immediate: HTTPResponse?
        var returned = false
        do {
            try body { [self] result in
                let response: HTTPResponse
                switch result {
                case .success(let r): response = r
                case .failure(let e): response = errorResponse(e)
                }
                if returned { responder.respond(response) } else { immediate = response }
            }
        } catch {
            return .respond(errorResponse(error))
        }
        returned = true
        if let r = immediate { return .respond(r) }
        return .deferred
    }

    func errorResponse(_ error: Error) -> HTTPResponse {
        if let e = error as? APIError { return e.response }
        logger.error("audit: \(error)")
        return APIError.internalError.response
    }

    // MARK: GET /api/audit

    func list(_ request: HTTPRequest, _ done: @escaping (Result<HTTPResponse, Error>) -> Void) throws {
        _ = try directory.authenticate(request.head.headers, ability: Ability.auditRead)
        let query: AuditQuery
        switch AuditQuery.parse(request.head.query) {
        case .success(let q): query = q
        case .failure(let problems): throw APIError.validation(problems.fields)
        }
        let filter = AuditFilter(recipient: query.recipient, status: query.status, since: query.since, until: query.until,
                                 metadata: query.metadata.map { MetadataPair(key: $0.key, value: $0.value) },
                                 idempotencyKey: query.idempotencyKey, messageID: query.messageID)
        if let text = query.search {
            search(filter, AuditSearch(text), query, done)
            return
        }
        store.auditPage(filter, limit: AuditService.rowsWanted(query), after: query.cursor) { result in
            done(result.map { rows in
                let total = query.count ? Total(count: min(rows.count, AuditQuery.countCap), exact: rows.count <= AuditQuery.countCap) : nil
                return AuditService.listResponse(Array(rows.prefix(query.limit + 1)), limit: query.limit, total: total)
            })
        }
    }

    /// One row more than asked tells whether another page follows (no empty last page); with
    /// count=true the read goes on to the cap: the page is its first rows.
    static func rowsWanted(_ query: AuditQuery) -> Int {
        (query.count ? max(query.limit, AuditQuery.countCap) : query.limit) + 1
    }

    /// `count=true`: `count` entries match — or more than `count` when not `exact` (the cap, or a
    /// search that stopped at its budget: `search.partial`).
    struct Total {
        var count: Int
        var exact: Bool
    }

    /// `q`: the rows the other filters give, newest first, each checked here — at most
    /// `AuditQuery.searchBudget` of them per request, read in a few keyset pages (`AuditScan`).
    /// Each page is read in its own loop iteration (SQLite: the next one through `later`, at most
    /// 2 500 rows ≈ 7 ms at 1 000 000 rows; PostgreSQL: each is a round trip), so the loop serves
    /// the other connections between them.
    func search(_ filter: AuditFilter, _ search: AuditSearch, _ query: AuditQuery, _ done: @escaping (Result<HTTPResponse, Error>) -> Void) {
        let scan = AuditScan<AuditEntry>(wanted: AuditService.rowsWanted(query), after: query.cursor,
                                         isMatch: { AuditService.matches($0, search) },
                                         position: { AuditCursor(acceptedAt: $0.acceptedAt, id: $0.id) })
        continueSearch(scan, filter, query, done)
    }

    func continueSearch(_ scan: AuditScan<AuditEntry>, _ filter: AuditFilter, _ query: AuditQuery,
                        _ done: @escaping (Result<HTTPResponse, Error>) -> Void) {
        guard let (after, limit) = scan.next else {
            let found = scan.matches
            let total = query.count
                ? Total(count: min(found.count, AuditQuery.countCap), exact: !scan.partial && found.count <= AuditQuery.countCap) : nil
            // A page not full because the budget ran out: `next` resumes the search after the
            // last row examined, so following `next` still walks every entry exactly once.
            let resume = found.count <= query.limit && scan.partial ? scan.resume : nil
            let response = AuditService.listResponse(Array(found.prefix(query.limit + 1)), limit: query.limit, total: total,
                                                     searched: (scan.examined, scan.partial), next: resume)
            done(.success(response))
            return
        }
        store.auditPage(filter, limit: limit, after: after) { [self] result in
            switch result {
            case .failure(let e):
                done(.failure(e))
            case .success(let rows):
                var scan = scan
                scan.receive(rows, limit: limit)
                if let later, scan.next != nil {
                    later.run { [self] in continueSearch(scan, filter, query, done) }
                } else {
                    continueSearch(scan, filter, query, done)
                }
            }
        }
    }

    static func matches(_ e: AuditEntry, _ search: AuditSearch) -> Bool {
        search.matches(e.subject) || search.matches(e.recipient) || (e.recipients?.contains { search.matches($0.address) } ?? false)
    }

    /// `page` holds up to `limit + 1` rows: the extra one says another page follows. `next`
    /// given: the cursor to hand out whatever the rows (a search that stopped at its budget).
    static func listResponse(_ page: [AuditEntry], limit: Int, total: Total? = nil, searched: (examined: Int, partial: Bool)? = nil,
                             next resume: AuditCursor? = nil) -> HTTPResponse {
        var rows = page
        var next = resume?.encoded
        if rows.count > limit {
            rows.removeLast()
            if let last = rows.last { next = AuditCursor(acceptedAt: last.acceptedAt, id: last.id).encoded }
        }
        var json = JSONWriter(capacity: 128 + rows.count * 512)
        json.open("{")
        json.add("ok", literal: "true")
        json.key("data")
        json.open("[")
        for e in rows {
            json.open("{")
            json.entry(e)
            json.close("}")
        }
        json.close("]")
        json.add("next", next)
        if let total {
            json.key("total")
            json.open("{")
            json.add("count", literal: String(total.count))
            json.add("exact", literal: total.exact ? "true" : "false")
            json.close("}")
        }
        if let searched {
            json.key("search")
            json.open("{")
            json.add("examined", literal: String(searched.examined))
            json.add("budget", literal: String(AuditQuery.searchBudget))
            json.add("partial", literal: searched.partial ? "true" : "false")
            json.close("}")
        }
        json.close("}")
        return HTTPResponse(status: 200, headers: AuditService.jsonHeaders, body: Array(json.out.utf8))
    }

    // MARK: GET /api/audit/{id}

    /// `GET /api/audit/{id}`, `…/{id}/raw` (the exact bytes, `message/rfc822`) and
    /// `…/{id}/attachments/{n}` (attachment n of the detail's list, decoded) — the last two
    /// always as downloads (`Content-Disposition: attachment`), never rendered.
    func detail(_ request: HTTPRequest, _ done: @escaping (Result<HTTPResponse, Error>) -> Void) throws {
        _ = try directory.authenticate(request.head.headers, ability: Ability.auditRead)
        let rest = request.head.path.dropFirst(AuditService.detailPrefix.count)
        let parts = rest.split(separator: "/", omittingEmptySubsequences: false)
        let idText = parts[0]
        let missing = APIError.noSuchResource("No audit entry \(String(idText.prefix(40)).debugDescription).")
        func number(_ t: Substring) -> Int64? {
            guard t.utf8.count <= 18, !t.isEmpty, t.utf8.allSatisfy({ $0 >= 0x30 && $0 <= 0x39 }) else { return nil }
            return Int64(t)
        }
        guard let id = number(idText), id > 0 else { throw missing }
        enum Want { case detail, raw, attachment(Int) }
        let want: Want
        switch parts.count {
        case 1: want = .detail
        case 2 where parts[1] == "raw": want = .raw
        case 3 where parts[1] == "attachments":
            guard let n = number(parts[2]), n < 1000 else { throw APIError.noSuchResource("No attachment \(String(parts[2].prefix(20)).debugDescription).") }
            want = .attachment(Int(n))
        default: throw APIError.noSuchResource("No such audit resource \(String(rest.prefix(60)).debugDescription).")
        }
        store.auditDetail(id: id) { result in
            done(result.flatMap { found in
                guard let (entry, attempts) = found else { return .failure(missing) }
                switch want {
                case .detail:
                    return .success(AuditService.detailResponse(entry, attempts))
                case .raw:
                    return .success(AuditService.download(entry.raw, type: "message/rfc822", filename: "\(entry.id).eml"))
                case .attachment(let n):
                    guard let (a, bytes) = MessageReader.attachment(entry.raw, index: n) else {
                        return .failure(APIError.noSuchResource("Audit entry \(id) has no attachment \(n)."))
                    }
                    return .success(AuditService.download(bytes, type: "application/octet-stream", filename: a.filename))
                }
            })
        }
    }

    /// A file to save, never to display: the type says nothing the browser may act on, the
    /// disposition says download, and a sandbox CSP covers a browser that renders anyway.
    static func download(_ bytes: [UInt8], type: String, filename: String) -> HTTPResponse {
        HTTPResponse(status: 200, headers: HTTPHeaders([
            (name: "Content-Type", value: type), (name: "Content-Disposition", value: "attachment; " + Encodings.filenameParameter(filename)),
            (name: "Cache-Control", value: "no-store"), (name: "X-Content-Type-Options", value: "nosniff"),
            (name: "Content-Security-Policy", value: "sandbox; default-src 'none'"),
        ]), body: bytes)
    }

    static func detailResponse(_ entry: AuditEntry, _ attempts: [DeliveryAttempt]) -> HTTPResponse {
        let message = MessageReader.read(entry.raw)
        var json = JSONWriter(capacity: 256 + entry.raw.count * 3)
        json.open("{")
        json.add("ok", literal: "true")
        json.key("data")
        json.open("{")
        json.entry(entry)
        // The From the recipient saw (display name as sent, read from the stored bytes): the
        // mailbox's display name may have changed since, and `mailbox` is only its name here.
        if let from = message.header("From") {
            let f = FromField.parse(from)
            json.key("from")
            json.open("{")
            json.add("name", f.name)
            json.add("address", f.address)
            json.close("}")
        } else {
            json.add("from", literal: "null")
        }
        json.key("attempts")
        json.open("[")
        for a in attempts {
            json.open("{")
            json.add("at", RFC3339.format(milliseconds: a.at))
            json.add("outcome", a.outcome)
            json.add("reply", a.reply)
            json.close("}")
        }
        json.close("]")
        json.key("message")
        json.open("{")
        json.key("headers")
        json.open("[")
        for h in message.headers {
            json.open("{")
            json.add("name", h.name)
            json.add("value", h.value)
            json.close("}")
        }
        json.close("]")
        json.add("text", message.text)
        json.add("html", message.html)
        // Files: listed with their download link, never inlined here.
        json.key("attachments")
        json.open("[")
        for (i, a) in message.attachments.enumerated() {
            json.open("{")
            json.add("index", literal: String(i))
            json.add("filename", a.filename)
            json.add("content_type", a.contentType)
            json.add("size", literal: String(a.size))
            json.add("inline", literal: a.inline ? "true" : "false")
            json.add("content_id", a.contentID)
            json.add("href", "/api/audit/\(entry.id)/attachments/\(i)")
            json.close("}")
        }
        json.close("]")
        json.add("raw", String(decoding: entry.raw, as: UTF8.self))
        json.close("}")
        json.close("}")
        json.close("}")
        return HTTPResponse(status: 200, headers: AuditService.jsonHeaders, body: Array(json.out.utf8))
    }
}

extension JSONWriter {
    /// The audit fields of SPEC §4 except the message, as members of the open object (the
    /// API's, and `audit list --json`'s, the same names and times).
    public mutating func entry(_ e: AuditEntry) {
        add("id", literal: String(e.id))
        add("accepted_at", RFC3339.format(milliseconds: e.acceptedAt))
        add("sent_at", e.sentAt.map { RFC3339.format(milliseconds: $0) })
        add("status", e.status)
        add("to", e.recipient)
        add("subject", e.subject)
        add("mailbox", e.mailboxName)
        add("mailbox_address", e.mailboxAddress)
        add("template", e.template)
        add("message_id", e.messageID)
        add("token_name", e.tokenName)
        add("idempotency_key", e.idempotencyKey)
        add("attempt_count", literal: String(e.attempts))
        add("next_attempt_at", (e.status == "queued" || e.status == "deferred") ? e.nextAttemptAt.map { RFC3339.format(milliseconds: $0) } : nil)
        add("last_reply", e.lastReply)
        key("metadata")
        open("{")
        for pair in e.metadata { add(pair.key, pair.value) }
        close("}")
        // Several recipients (Cc, Bcc): each one's kind, state and last reply; null otherwise.
        guard let list = e.recipients else {
            add("recipients", literal: "null")
            return
        }
        key("recipients")
        open("[")
        for r in list {
            open("{")
            add("address", r.address)
            add("kind", r.kind.rawValue)
            add("status", r.status.rawValue)
            add("last_reply", r.lastReply)
            close("}")
        }
        close("]")
    }
}
