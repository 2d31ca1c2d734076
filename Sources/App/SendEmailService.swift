/// SendEmailService: the `POST /api/send_email` use case (SPEC §4), in the check order the
/// spec fixes — authentication, Content-Type, Idempotency-Key, JSON parse, idempotency
/// look-up, validation, execution — and the group commit that makes accepted messages
/// durable before any `200` leaves.
///
/// Accepting a request does not write: the queue/audit row and the idempotency record join
/// this loop iteration's batch, the response is deferred, and the key is marked in flight
/// (a second request with it meanwhile gets `409 idempotency_key_in_use`). The reactor's
/// `commit` tail phase writes the whole batch in one transaction, then answers every request
/// in it — `200` on success, `503` (nothing stored, retry with the same key) if the commit
/// failed — and only then does the `flush` phase write responses to sockets.
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
        var message: NewMessage
        var responder: Responder
        var inFlightKey: String
    }

    let db: Database
    let reactor: Reactor
    var logger: Logger
    let mailFromAddress: String?
    let retentionMilliseconds: Int64
    var random = FastRandom()

    var batch: [Pending] = []
    var inFlight: [String: [UInt8]] = [:]

    let directory: Directory

    var sweepTimer: TimerHandle?

    /// Other writers whose writes join this iteration's transaction (the delivery scheduler).
    var participants: [CommitParticipant] = []
    /// Receives the rows each successful commit made durable.
    weak var scheduler: DeliveryScheduler?
    /// What a commit that answers requests uses (`--sqlite-synchronous`).
    let durableSynchronous: Database.Synchronous
    /// Under FULL, commits that carry only delivery status writes (`sending`, an attempt's
    /// outcome) are not synced: like every commit they survive a process crash (the duplicate
    /// window stays one loop iteration), and the next commit that answers requests — or, at the
    /// latest a second later, an fdatasync of the WAL — makes them durable, so a power loss can
    /// lose at most a second of `sent` statuses (those messages are sent again with their
    /// Message-ID; nothing accepted is ever lost). Off at shutdown.
    var relaxStatusCommits = true
    /// Armed by the first unsynced status commit; cleared by any synced commit.
    var walSyncTimer: TimerHandle?
    var unsyncedCommits = false
    static let statusSyncDelay: Duration = .seconds(1)
    /// Times each commit (`--metrics-listen`).
    var metrics: ServerMetrics?

    /// Armed by a failed begin or commit (the lock busy, the disk full): while it runs no
    /// transaction is tried — requests are answered 503 at once and the iteration's other
    /// writes wait — so the loop waits on the lock at most once (the busy timeout, a few ms)
    /// per `storeRetryDelay`, never once per request. Its firing wakes the loop to retry.
    var storeRetryTimer: TimerHandle?
    /// The database files as opened; `filesBroken` once they were deleted or replaced (then
    /// nothing more is accepted until a restart: commits would go to files no one else sees).
    let openedFiles: OpenedFiles
    public private(set) var filesBroken: String?
    var busyEpisode = 0
    static let storeRetryDelay: Duration = .milliseconds(100)

    /// Counters (tests, logs, later metrics).
    public private(set) var accepted = 0
    public private(set) var commitFailures = 0

    public init(db: Database, reactor: Reactor, directory: Directory, logger: Logger, mailFromAddress: String?, retentionSeconds: Int) {
        self.db = db
        self.directory = directory
        durableSynchronous = db.synchronous
        openedFiles = db.openedFiles()
        self.reactor = reactor
        self.logger = logger
        self.mailFromAddress = mailFromAddress
        retentionMilliseconds = Int64(retentionSeconds) * 1000
        reactor.addTailHandler(self, phase: .commit)
        let t = reactor.makeTimer(self)
        sweepTimer = t
        reactor.arm(t, after: .seconds(5))
        walSyncTimer = reactor.makeTimer(WALSyncTimer(self))
        storeRetryTimer = reactor.makeTimer(StoreRetryTimer())
    }

    var storeIsBusy: Bool { storeRetryTimer.map { reactor.isArmed($0) } ?? false }

    /// A begin or commit failed (the lock busy, the disk full, …): rest until
    /// `storeRetryDelay` from now and wake the loop then (the writes kept for the next
    /// transaction need no other event). One log line per episode, not one per failure.
    func noteStoreFailure(_ error: Error, _ what: String) {
        if let t = storeRetryTimer { reactor.arm(t, after: SendEmailService.storeRetryDelay) }
        busyEpisode += 1
        if busyEpisode == 1 {
            let cause = (error as? SQLiteError)?.isBusy == true ? "the database is locked by another process" : "\(error)"
            logger.error("\(what) failed: \(cause); answering 503 and retrying every \(SendEmailService.storeRetryDelay) until it works")
        }
    }

    /// Before each commit: are the files still the ones we opened? (3 stat calls a commit.)
    func checkFiles() throws {
        if filesBroken != nil { throw FilesBroken() }
        guard let problem = openedFiles.change() else { return }
        filesBroken = problem
        logger.critical("\(problem): no longer accepting messages (503) — what is committed now would be lost. Stop the server, restore the files or remove the database, and start again.")
        throw FilesBroken()
    }

    /// A transaction went through: a failure episode, if any, is over (one line for it all).
    func noteStoreRecovered() {
        if busyEpisode > 0 {
            logger.notice("the database accepts writes again (after \(busyEpisode) failed attempts)")
            busyEpisode = 0
        }
    }

    static func nowMilliseconds() -> Int64 {
        var ts = timespec()
        clock_gettime(CLOCK_REALTIME, &ts)
        return Int64(ts.tv_sec) * 1000 + Int64(ts.tv_nsec) / 1_000_000
    }

    // MARK: Request

    public func handle(_ request: HTTPRequest, responder: Responder) -> HandlerResult {
        do {
            return try process(request, responder: responder)
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

    func process(_ request: HTTPRequest, responder: Responder) throws -> HandlerResult {
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

        // 5. Idempotency look-up — inside this iteration's transaction (one lock round per
        // iteration instead of one read transaction, and its shm fcntl locks, per request).
        try beginIterationTransaction()
        let fingerprint = Idempotency.fingerprint(body)
        let scopedKey = "\(token.id)\u{0}\(key)"
        let now = SendEmailService.nowMilliseconds()
        switch Idempotency.decide(stored: try db.idempotencyRecord(tokenID: token.id, key: key), inFlight: inFlight[scopedKey],
                                  fingerprint: fingerprint, nowMilliseconds: now, retentionMilliseconds: retentionMilliseconds) {
        case .inUse:
            throw APIError.idempotencyInUse
        case .conflict:
            throw APIError.idempotencyConflict
        case .replay(let status, let stored):
            var h = HTTPHeaders([(name: "Content-Type", value: "application/json")])
            h.add(name: "Idempotent-Replayed", value: "true")
            return .respond(HTTPResponse(status: status, headers: h, body: stored))
        case .proceed:
            break
        }

        // 6. Validation.
        let send = try SendAPI.validate(body).get()

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
        case .template(let identifier, let data):
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
            subject = rendered.subject
            html = rendered.html
            text = rendered.text
            templateID = identifier
        }
        let message = MessageBuilder.build(
            .init(fromAddress: mailbox.address, fromName: mailbox.displayName, to: send.toAddress, subject: subject, html: html, text: text),
            epochSeconds: Int(now / 1000), random: &random)

        var responseBody = "{\"ok\":true,\"data\":{\"mailbox\":"
        JSONText.appendString(mailbox.address, to: &responseBody)
        responseBody += ",\"used_template\":\(send.usesTemplate)}}"
        let bodyBytes = Array(responseBody.utf8)

        inFlight[scopedKey] = fingerprint
        batch.append(Pending(message: NewMessage(
            acceptedAt: now, tokenID: token.id, tokenName: token.name, idempotencyKey: key, fingerprint: fingerprint,
            responseStatus: 200, responseBody: bodyBytes, mailboxName: mailbox.name, mailboxAddress: mailbox.address,
            recipient: send.toAddress, subject: subject, template: templateID, messageID: message.messageID, raw: message.bytes),
            responder: responder, inFlightKey: scopedKey))
        return .deferred
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

    /// The first request of a loop iteration that gets as far as the idempotency look-up
    /// opens the iteration's write transaction (IMMEDIATE); the commit phase closes it.
    func beginIterationTransaction() throws {
        guard !db.inTransaction else { return }
        if storeIsBusy || filesBroken != nil { throw APIError.unavailable }
        do {
            try db.setSynchronous(durableSynchronous)
            try db.begin()
        } catch {
            noteStoreFailure(error, "beginning the batch transaction")
            throw APIError.unavailable
        }
    }

    public func runTail(_ phase: TailPhase) -> Bool {
        guard phase == .commit else { return false }
        let othersWrite = participants.contains { $0.hasPendingWrites }
        guard db.inTransaction || !batch.isEmpty || othersWrite else { return false }
        let items = batch
        batch.removeAll(keepingCapacity: true)
        var ok = true
        var ids: [Int64] = []
        ids.reserveCapacity(items.count)
        var handOver = 0
        do {
            try checkFiles()
            if !db.inTransaction {
                if storeIsBusy { throw StoreResting() }
                try db.setSynchronous(items.isEmpty && relaxStatusCommits && durableSynchronous == .full ? .normal : durableSynchronous)
                try db.begin()
            }
            // The scheduler takes up to `intakeRoom` of them right after the commit: those rows
            // start as `sending`.
            handOver = scheduler?.intakeRoom ?? 0
            for (n, item) in items.enumerated() { ids.append(try db.insertAccepted(item.message, sending: n < handOver)) }
            for p in participants where p.hasPendingWrites { try p.writePending(db) }
            if let metrics {
                let start = Instant.now()
                try db.commit()
                metrics.committed(after: start)
            } else {
                try db.commit()
            }
            if db.synchronous == durableSynchronous {
                unsyncedCommits = false
            } else if !unsyncedCommits, let t = walSyncTimer {
                unsyncedCommits = true
                reactor.arm(t, after: SendEmailService.statusSyncDelay)
            }
            noteStoreRecovered()
        } catch {
            db.rollback()
            ok = false
            commitFailures += 1
            if !(error is StoreResting) && !(error is FilesBroken) { noteStoreFailure(error, "the group commit of \(items.count) message(s)") }
        }
        // Accepted messages go to the scheduler before the participants hear of the commit:
        // sessions still holding their output then take them into the write the commit
        // releases (RelayPool.dispatch).
        if ok && !items.isEmpty, let scheduler {
            var queued: [QueuedMessage] = []
            queued.reserveCapacity(items.count)
            for (n, (item, id)) in zip(items, ids).enumerated() {
                let m = item.message
                queued.append(QueuedMessage(id: id, acceptedAt: m.acceptedAt, mailboxName: m.mailboxName, from: m.mailboxAddress,
                                            recipient: m.recipient, messageID: m.messageID, raw: m.raw, attempts: 0,
                                            markedSending: n < handOver))
            }
            scheduler.accepted(queued)
        }
        for p in participants { p.committed(ok) }
        for item in items {
            inFlight[item.inFlightKey] = nil
            if ok {
                item.responder.respond(HTTPResponse(status: 200, headers: HTTPHeaders([(name: "Content-Type", value: "application/json")]),
                                                    body: item.message.responseBody))
            } else {
                item.responder.respond(APIError.unavailable.response)
            }
        }
        if ok && !items.isEmpty {
            accepted += items.count
            logger.trace("group commit: \(items.count) message(s)")
        }
        // Writes made after the commit (the hand-off above: a file:// outcome, a requeue) go in
        // the next iteration, which must come without sleeping.
        return ok && participants.contains { $0.hasPendingWrites }
    }

    // MARK: Idempotency sweep

    public func onDeadline() {
        let cutoff = SendEmailService.nowMilliseconds() - retentionMilliseconds
        var deleted = 0
        do {
            deleted = try db.sweepIdempotency(createdBefore: cutoff, limit: 500)
        } catch {
            logger.warning("idempotency sweep: \(error)")
        }
        // A full batch means more may be waiting: come back soon, but let requests run between.
        if let t = sweepTimer { reactor.arm(t, after: deleted == 500 ? .milliseconds(50) : .seconds(60)) }
    }
}

/// The token a request's head was authenticated with (steps 1–2 passed).
final class TokenApproval: Sendable {
    let token: StoredToken
    init(_ token: StoredToken) { self.token = token }
}

struct StoreResting: Error {}
struct FilesBroken: Error {}

/// Wakes the loop when a resting store may be tried again (the commit phase then runs with the
/// writes that were kept).
final class StoreRetryTimer: DeadlineHandler {
    func onDeadline() {}
}

/// A second after the first unsynced status commit: if no synced commit came since, sync the
/// WAL (one fdatasync, as a FULL commit would have done).
final class WALSyncTimer: DeadlineHandler {
    weak var service: SendEmailService?
    init(_ service: SendEmailService) { self.service = service }

    func onDeadline() {
        guard let service, service.unsyncedCommits else { return }
        do {
            try service.db.syncWAL()
            service.unsyncedCommits = false
        } catch {
            service.logger.error("syncing the WAL: \(error); retrying in a second")
            if let t = service.walSyncTimer { service.reactor.arm(t, after: SendEmailService.statusSyncDelay) }
        }
    }
}
