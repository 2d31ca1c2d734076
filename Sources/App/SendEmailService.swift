/// SendEmailService: the `POST /api/send_email` use case (SPEC §4), in the check order the
/// spec fixes — authentication, Content-Type, Idempotency-Key, JSON parse, idempotency
/// look-up, validation, execution — and the group commit that makes accepted messages
/// durable before any `200` leaves.
///
/// Accepting a request does not write: the queue/audit row and the idempotency record join
/// this loop iteration's batch, the response is deferred, and the key is marked in flight
/// (a second request with it meanwhile gets `409 idempotency_key_in_use`). The reactor's
/// `commit` tail phase hands the whole batch to the store as one transaction (`ServerStore`);
/// when it completes — SQLite in the same phase, PostgreSQL in a later iteration — every
/// request in it is answered: `200` when stored, a replay or `409` when the store found the
/// key taken, `503` (nothing stored, retry with the same key) if the commit failed. Only then
/// does the `flush` phase write responses to sockets.
///
/// The stored idempotency record is read inside that transaction, not before validation: a
/// request that fails validation joins the batch as a look-up, so a stored record still
/// answers it with its replay or conflict (SPEC §4's check order) and otherwise its `422`
/// goes out.
///
/// Reads (tokens, mailboxes, templates) come from the `Directory`, whose caches follow the
/// admin CLI's commits, so a revoked token stops working on the very next request.
#if canImport(Glibc)
import Glibc
#endif
import Auth
import HTTP1
import HTTPServer
import Idempotency
import JSON
import Logging
import MIME
import Reactor
import SendAPI
import Store
import Templates

public final class SendEmailService: TailHandler, DeadlineHandler {
    struct Pending {
        var item: CommitItem
        var responder: Responder
        /// Set for an accepted message (its key is in flight until the commit completes).
        var inFlightKey: String?
        var fingerprint: [UInt8]
        /// A look-up's answer when no record holds the key (the validation error).
        var refusal: HTTPResponse?
    }

    let store: ServerStore
    let reactor: Reactor
    var logger: Logger
    let mailFromAddress: String?
    /// `--max-attachment-bytes`
    public var maxAttachmentBytes = SendAPI.defaultMaxAttachmentBytes
    let retentionMilliseconds: Int64
    var random = FastRandom()

    var batch: [Pending] = []
    var inFlight: [String: [UInt8]] = [:]

    let directory: Directory

    var sweepTimer: TimerHandle?

    /// Other writers whose writes join each group commit (the delivery scheduler).
    var participants: [CommitParticipant] = []
    /// Receives the rows each successful commit made durable.
    weak var scheduler: DeliveryScheduler?
    /// Times each commit (`--metrics-listen`).
    var metrics: ServerMetrics?

    /// Counters (tests, logs, later metrics).
    public private(set) var accepted = 0
    /// Commits that stored accepted messages (their mean size: `accepted / groupCommits`).
    public private(set) var groupCommits = 0
    public private(set) var commitFailures = 0

    public init(store: ServerStore, reactor: Reactor, directory: Directory, logger: Logger, mailFromAddress: String?, retentionSeconds: Int) {
        self.store = store
        self.directory = directory
        self.reactor = reactor
        self.logger = logger
        self.mailFromAddress = mailFromAddress
        retentionMilliseconds = Int64(retentionSeconds) * 1000
        reactor.addTailHandler(self, phase: .commit)
        let t = reactor.makeTimer(self)
        sweepTimer = t
        reactor.arm(t, after: .seconds(5))
    }

    static func nowMilliseconds() -> Int64 {
        var ts = timespec()
        clock_gettime(CLOCK_REALTIME, &ts)
        return Int64(ts.tv_sec) * 1000 + Int64(ts.tv_nsec) / 1_000_000
    }

    // MARK: Request

    /// The endpoints this service answers: the same checks in the same order, the same
    /// idempotency and group commit; send_email queues a message, render_template only keeps
    /// its answer (SPEC §4 "More endpoints of the same family").
    public enum Endpoint: String, Sendable { case sendEmail = "send_email", renderTemplate = "render_template", batch = "send_email/batch" }

    public func handle(_ request: HTTPRequest, responder: Responder, endpoint: Endpoint = .sendEmail) -> HandlerResult {
        do {
            return try process(request, responder: responder, endpoint: endpoint)
        } catch let e as APIError {
            return .respond(e.response)
        } catch {
            logger.error("send_email: \(error)")
            return .respond(APIError.internalError.response)
        }
    }

    /// Steps 1 and 2 on the head alone, before the body is read (`HTTPHandler.checkBeforeBody`):
    /// an unauthenticated client or a wrong Content-Type never makes us hold a body. The
    /// token travels with the request (`TokenApproval`), so it is not verified twice.
    public func checkHead(_ head: RequestHead) -> HeadDecision {
        do {
            return .proceed(approval: TokenApproval(try checkAuthenticationAndContentType(head.headers)))
        } catch let e as APIError {
            return .refuse(e.response)
        } catch {
            logger.error("send_email: \(error)")
            return .refuse(APIError.internalError.response)
        }
    }

    func checkAuthenticationAndContentType(_ headers: HTTPHeaders) throws -> StoredToken {
        // 1. Authentication and ability.
        let token = try directory.authenticate(headers, ability: Ability.sendEmail)

        // 2. Content-Type (given once: two would leave the media type to whichever we read).
        if headers.occurrences(of: "Content-Type") > 1 { throw APIError.duplicateHeader("Content-Type") }
        guard SendAPI.contentTypeIsJSON(headers["Content-Type"]) else { throw APIError.unsupportedMediaType }
        return token
    }

    func process(_ request: HTTPRequest, responder: Responder, endpoint: Endpoint) throws -> HandlerResult {
        let headers = request.head.headers
        // Steps 1 and 2: done on the head for every request with a body.
        let token = try (request.approval as? TokenApproval)?.token ?? checkAuthenticationAndContentType(headers)

        // 3. Idempotency-Key.
        let keyHeader = headers.values(for: "Idempotency-Key")
        if keyHeader.count > 1 { throw APIError.validation([("Idempotency-Key", ["must be given once"])]) }
        if let problem = SendAPI.idempotencyKeyProblem(keyHeader.first) { throw APIError.validation([("Idempotency-Key", [problem])]) }
        let key = keyHeader[0]

        // 4. JSON.
        let body = try SendAPI.parseBody(request.body).get()

        // 5. Idempotency: the stored record is read in the group commit's transaction (see
        // the type's comment). A key in flight here is a look-up answered `in use` unless a
        // record stored before holds it (a replay of an earlier call); look-ups come first in
        // the transaction, before this batch's own inserts.
        let fingerprint = endpoint == .sendEmail ? Idempotency.fingerprint(body) : Idempotency.fingerprint(body, endpoint: endpoint.rawValue)
        let scopedKey = "\(token.id)\u{0}\(key)"
        if store.unavailableReason != nil { throw APIError.unavailable }
        if inFlight[scopedKey] != nil {
            batch.append(Pending(item: .lookUp(tokenID: token.id, key: key), responder: responder, inFlightKey: nil,
                                 fingerprint: fingerprint, refusal: APIError.idempotencyInUse.response))
            return .deferred
        }
        let now = SendEmailService.nowMilliseconds()
        do {
            let item: CommitItem
            switch endpoint {
            case .sendEmail:
                item = .accept(try build(body, token: token, key: key, fingerprint: fingerprint, now: now), sending: false)
            case .renderTemplate:
                item = .record(tokenID: token.id, key: key, IdempotencyRecord(fingerprint: fingerprint, status: 200, body: try render(body), createdAt: now))
            case .batch:
                item = try buildBatch(body, token: token, key: key, fingerprint: fingerprint, now: now)
            }
            inFlight[scopedKey] = fingerprint
            batch.append(Pending(item: item, responder: responder, inFlightKey: scopedKey, fingerprint: fingerprint, refusal: nil))
        } catch let e as APIError {
            batch.append(Pending(item: .lookUp(tokenID: token.id, key: key), responder: responder, inFlightKey: nil,
                                 fingerprint: fingerprint, refusal: e.response))
        }
        return .deferred
    }

    /// Steps 6 and 7: validation, then the mailbox, the content and the message's bytes.
    func build(_ body: JSONValue, token: StoredToken, key: String, fingerprint: [UInt8], now: Int64) throws -> NewMessage {
        // 6. Validation.
        let send = try SendAPI.validate(body, maxAttachmentBytes: maxAttachmentBytes).get()

        // 7. Execution: mailbox, content, message.
        let mailbox = try chooseMailbox(send.mailbox)
        let subject: String
        let html: String
        var text: String?
        var templateID: String?
        switch send.content {
        case .direct(let s, let c):
            subject = s
            html = c
            text = send.text
        case .template(let identifier, let data):
            (subject, html, text) = try renderTemplate(identifier, data)
            templateID = identifier
        }
        let message = MessageBuilder.build(
            .init(fromAddress: mailbox.address, fromName: mailbox.displayName, to: send.toAddress, subject: subject, html: html, text: text,
                  replyTo: send.replyTo, cc: send.cc, headers: send.headers, attachments: send.attachments),
            epochSeconds: Int(now / 1000), epochMilliseconds: now, random: &random)

        var responseBody = "{\"ok\":true,\"data\":{\"mailbox\":"
        JSONText.appendString(mailbox.address, to: &responseBody)
        responseBody += ",\"used_template\":\(send.usesTemplate)}}"
        let bodyBytes = Array(responseBody.utf8)

        return NewMessage(
            acceptedAt: now, tokenID: token.id, tokenName: token.name, idempotencyKey: key, fingerprint: fingerprint,
            responseStatus: 200, responseBody: bodyBytes, mailboxName: mailbox.name, mailboxAddress: mailbox.address,
            recipient: send.toAddress, subject: subject, template: templateID, messageID: message.messageID, raw: message.bytes,
            recipients: send.cc.isEmpty && send.bcc.isEmpty ? nil
                : [RecipientState(address: send.toAddress, kind: .to)] + send.cc.map { RecipientState(address: $0, kind: .cc) }
                    + send.bcc.map { RecipientState(address: $0, kind: .bcc) },
            metadata: send.metadata.map { MetadataPair(key: $0.key, value: $0.value) })
    }

    /// A stored template rendered with `data`, by the rules of SPEC §4: 422 for an unknown
    /// template, for missing placeholders (named), for a rendered subject a send could not use.
    func renderTemplate(_ identifier: String, _ data: JSONValue) throws -> (subject: String, html: String, text: String?) {
        guard let template = try directory.template(identifier) else {
            throw APIError.validation([("template_identifier", ["no template \"\(identifier)\" exists"])])
        }
        let missing = template.missingVariables(in: data)
        if !missing.isEmpty {
            throw APIError.validation([("data", missing.map { "is missing the placeholder \"\($0)\"" })])
        }
        let rendered = template.render(data)
        // The same rules as a given subject (NUL, ESC, DEL from the data, a 5 000-octet
        // section…), named after what the data did.
        if let p = SendAPI.subjectProblem(rendered.subject) {
            throw APIError.validation([("data", [rendered.subject.isEmpty ? "renders an empty subject" : "renders a subject that \(p)"])])
        }
        return (rendered.subject, rendered.html, rendered.text)
    }

    /// render_template's answer: the subject, HTML and text exactly as a send of the same
    /// template and data builds them (the text derived from the HTML when the template has none).
    func render(_ body: JSONValue) throws -> [UInt8] {
        let (identifier, data) = try SendAPI.validateRender(body).get()
        let (subject, html, text) = try renderTemplate(identifier, data)
        var out = "{\"ok\":true,\"data\":{\"subject\":"
        JSONText.appendString(subject, to: &out)
        out += ",\"html\":"
        JSONText.appendString(html, to: &out)
        out += ",\"text\":"
        JSONText.appendString(text ?? HTMLText.plainText(fromHTML: html), to: &out)
        out += "}}"
        return Array(out.utf8)
    }

    // MARK: Reads

    /// SPEC §4 "Mailbox choice".
    func chooseMailbox(_ name: String?) throws -> MailboxRecord {
        let all = try directory.mailboxes()
        if let name {
            guard let m = all.first(where: { $0.name == name }) else {
                throw APIError.validation([("mailbox", ["no mailbox named \"\(name)\" exists"])])
            }
            guard m.enabled else { throw APIError.validation([("mailbox", ["mailbox \"\(name)\" is disabled"])]) }
            return m
        }
        let enabled = all.filter(\.enabled)
        if let from = mailFromAddress, let m = enabled.first(where: { asciiCaseInsensitiveEquals($0.address, from) }) {
            return m
        }
        guard let first = enabled.first else {
            throw APIError.validation([("mailbox", ["no enabled mailbox is configured"])], message: "No mailbox can send this message.")
        }
        return first
    }

    // MARK: Group commit (tail phase .commit)

    public func runTail(_ phase: TailPhase) -> Bool {
        guard phase == .commit else { return false }
        // One commit at a time: what arrives meanwhile is the next batch (PostgreSQL's commit
        // completes in a later iteration, whose tail sends the next).
        guard !store.isCommitting else { return false }
        let othersWrite = participants.contains { $0.hasPendingWrites }
        guard !batch.isEmpty || othersWrite else { return false }
        // Look-ups first: they see what was stored before this batch (see `process`).
        var items = batch.filter { if case .lookUp = $0.item { return true } else { return false } }
        if items.isEmpty {
            items = batch
        } else {
            items += batch.filter { if case .lookUp = $0.item { return false } else { return true } }
        }
        batch.removeAll(keepingCapacity: true)
        // The scheduler takes up to `intakeRoom` of them right after the commit: those rows
        // start as `sending`.
        var handOver = scheduler?.intakeRoom ?? 0
        for i in items.indices where handOver > 0 {
            switch items[i].item {
            case .accept(let m, _):
                items[i].item = .accept(m, sending: true)
                handOver -= 1
            case .batch(let tokenID, let key, let r, var messages):
                for j in messages.indices where handOver > 0 {
                    messages[j].sending = true
                    handOver -= 1
                }
                items[i].item = .batch(tokenID: tokenID, key: key, r, messages)
            default:
                continue
            }
        }
        let b = CommitBatch(items: items.map(\.item), statusWrites: takeParticipantWrites(),
                            idempotencyCutoff: SendEmailService.nowMilliseconds() - retentionMilliseconds)
        let start = Instant.now()
        var completedNow = false
        var succeeded = false
        store.commit(b) { [self] outcome in
            completedNow = true
            if case .busy = outcome { return keepForRetry(items) }
            metrics?.committed(after: start)
            succeeded = finishCommit(items, outcome)
        }
        // Writes made after the commit (the hand-off: a file:// outcome, a requeue) go in the
        // next iteration, which must come without sleeping.
        return completedNow && succeeded && participants.contains { $0.hasPendingWrites }
    }

    /// Between the events of a long batch (`Reactor.afterPriorityEvents`): the delivery outcomes
    /// the SMTP sessions just reported, committed now in a commit of statuses alone (not synced:
    /// see SQLiteServerStore), so that the sessions holding their output until their `sent` is
    /// recorded write their next message in this iteration rather than the next — the
    /// crash-duplicate bound (one message per session) is unchanged. Only on a store that
    /// commits inline; the tail's group commit does everything else.
    public func commitDeliveryOutcomes() {
        guard store.commitsInline, !store.isCommitting, let scheduler, scheduler.outputHeld else { return }
        let b = CommitBatch(items: [], statusWrites: takeParticipantWrites(),
                            idempotencyCutoff: SendEmailService.nowMilliseconds() - retentionMilliseconds)
        let start = Instant.now()
        store.commit(b) { [self] outcome in
            if case .busy = outcome { return keepForRetry([]) }
            metrics?.committed(after: start)
            finishCommit([], outcome)
        }
    }

    /// The store found another process's write lock (`.busy`): nothing was written. The items
    /// go back to the front of the batch as they came (not yet handed to the scheduler), the
    /// participants keep their writes, and the store wakes the loop for the next try.
    func keepForRetry(_ items: [Pending]) {
        for p in participants { p.committed(false) }
        var back = items
        for i in back.indices {
            switch back[i].item {
            case .accept(let m, _):
                back[i].item = .accept(m, sending: false)
            case .batch(let tokenID, let key, let r, var messages):
                for j in messages.indices { messages[j].sending = false }
                back[i].item = .batch(tokenID: tokenID, key: key, r, messages)
            default:
                continue
            }
        }
        batch = back + batch
    }

    /// The other writers' writes (delivery statuses, token uses), for the commit on its way.
    func takeParticipantWrites() -> [StatusWrite] {
        var writes: [StatusWrite] = []
        for p in participants where p.hasPendingWrites { writes += p.takePendingWrites() }
        return writes
    }

    /// The commit's completion: the scheduler first (sessions still holding their output then
    /// take the new messages into the write the commit releases, RelayPool.dispatch), then the
    /// participants, then every request's answer. Returns whether the batch was stored.
    @discardableResult
    func finishCommit(_ items: [Pending], _ outcome: CommitOutcome) -> Bool {
        let results: [CommitItemResult]
        switch outcome {
        case .committed(let r):
            results = r
        case .failed, .busy:
            commitFailures += 1
            results = Array(repeating: .failed, count: items.count)
        }
        var stored = 0
        if let scheduler {
            var queued: [QueuedMessage] = []
            func queue(_ m: NewMessage, _ id: Int64, _ sending: Bool) {
                queued.append(QueuedMessage(id: id, acceptedAt: m.acceptedAt, mailboxName: m.mailboxName, from: m.mailboxAddress,
                                            recipient: m.recipient, messageID: m.messageID, raw: m.raw, attempts: 0,
                                            markedSending: sending, recipients: m.recipients))
            }
            for (item, result) in zip(items, results) {
                switch (item.item, result) {
                case (.accept(let m, let sending), .inserted(let id)):
                    queue(m, id, sending)
                case (.batch(_, _, _, let messages), .insertedBatch(let ids)):
                    for ((m, sending), id) in zip(messages, ids) { queue(m, id, sending) }
                default:
                    continue
                }
            }
            if !queued.isEmpty { scheduler.accepted(queued) }
        }
        let ok: Bool
        if case .committed = outcome { ok = true } else { ok = false }
        for p in participants { p.committed(ok) }
        let now = SendEmailService.nowMilliseconds()
        for (item, result) in zip(items, results) {
            if let k = item.inFlightKey { inFlight[k] = nil }
            item.responder.respond(answer(item, result, now: now))
            if case .inserted = result, case .accept = item.item { stored += 1 }
            if case .insertedBatch(let ids) = result { stored += ids.count }
        }
        if stored > 0 {
            accepted += stored
            groupCommits += 1
            logger.trace("group commit: \(stored) message(s)")
        }
        return ok
    }

    func answer(_ item: Pending, _ result: CommitItemResult, now: Int64) -> HTTPResponse {
        switch result {
        case .inserted:
            switch item.item {
            case .accept(let m, _):
                return HTTPResponse(status: 200, headers: HTTPHeaders([(name: "Content-Type", value: "application/json")]), body: m.responseBody)
            case .record(_, _, let r):
                return HTTPResponse(status: r.status, headers: HTTPHeaders([(name: "Content-Type", value: "application/json")]), body: r.body)
            case .lookUp, .batch:
                return APIError.internalError.response
            }
        case .insertedBatch:
            guard case .batch(_, _, let r, _) = item.item else { return APIError.internalError.response }
            return HTTPResponse(status: r.status, headers: HTTPHeaders([(name: "Content-Type", value: "application/json")]), body: r.body)
        case .absent:
            return item.refusal ?? APIError.internalError.response
        case .failed:
            return APIError.unavailable.response
        case .inUse:
            return APIError.idempotencyInUse.response
        case .taken(let record):
            switch Idempotency.decide(stored: record, inFlight: nil, fingerprint: item.fingerprint, nowMilliseconds: now,
                                      retentionMilliseconds: retentionMilliseconds) {
            case .replay(let status, let stored):
                var h = HTTPHeaders([(name: "Content-Type", value: "application/json")])
                h.add(name: "Idempotent-Replayed", value: "true")
                return HTTPResponse(status: status, headers: h, body: stored)
            case .conflict:
                return APIError.idempotencyConflict.response
            case .inUse:
                return APIError.idempotencyInUse.response
            case .proceed:
                // Expired between the store's look-up and now: the client retries and proceeds.
                return APIError.unavailable.response
            }
        }
    }

    /// Shutdown: the writes left (the last outcomes, requeues) committed, waiting for a commit
    /// on its way; bounded by `rounds` loop iterations.
    func commitRemaining(rounds: Int = 200) {
        var n = 0
        while n < rounds && (store.isCommitting || !batch.isEmpty || participants.contains { $0.hasPendingWrites }) {
            n += 1
            if store.isCommitting {
                do { try reactor.runOnce(maxWait: .milliseconds(50)) } catch { return }
            } else if !runTail(.commit) && !store.isCommitting && participants.contains(where: { $0.hasPendingWrites }) && n > 3 {
                return   // the store refuses: what is left is redone after the restart
            }
        }
    }

    // MARK: Idempotency sweep

    public func onDeadline() {
        let cutoff = SendEmailService.nowMilliseconds() - retentionMilliseconds
        store.sweepIdempotency(createdBefore: cutoff, limit: 500) { [self] result in
            var deleted = 0
            switch result {
            case .success(let n): deleted = n
            case .failure(let e): logger.warning("idempotency sweep: \(e)")
            }
            // A full batch means more may be waiting: come back soon, but let requests run between.
            if let t = sweepTimer { reactor.arm(t, after: deleted == 500 ? .milliseconds(50) : .seconds(60)) }
        }
    }
}

/// The token a request's head was authenticated with (steps 1–2 passed).
final class TokenApproval: RequestApproval, @unchecked Sendable {
    let token: StoredToken
    init(_ token: StoredToken) {
        self.token = token
        super.init(logName: token.name)
    }
}

