/// Directory: the server's cached reads of what the admin CLI writes — tokens, mailboxes,
/// templates — and bearer authentication over them, shared by every route.
///
/// The caches live while the store's directory version is unchanged (SQLite: `PRAGMA
/// data_version`; PostgreSQL: bumped when a NOTIFY from an admin command was followed by a
/// fresh copy); it is checked once per loop iteration, so an admin's commit (a revoked token,
/// a disabled mailbox, a new template) is seen by the next iteration's requests without a
/// restart.
import Auth
import HTTP1
import Logging
import Reactor
import SendAPI
import Store
import Templates

public final class Directory {
    let store: ServerStore
    let reactor: Reactor
    var logger: Logger

    var cachedVersion: Int64 = -1
    var checkedIteration: UInt64 = .max
    var tokenCache: [Int64: StoredToken] = [:]
    var mailboxCache: [MailboxRecord]?
    var templateCache: [String: EmailTemplate] = [:]
    /// Token uses: the last one written per token, and those waiting for the next commit.
    var useWritten: [Int64: Int64] = [:]
    var pendingUses: [StatusWrite] = []
    static let useGranularityMilliseconds: Int64 = 60_000

    init(store: ServerStore, reactor: Reactor, logger: Logger) {
        self.store = store
        self.reactor = reactor
        self.logger = logger
    }

    /// Once per loop iteration: drops the caches when another connection committed.
    func refreshIfChanged() throws {
        guard reactor.iterations != checkedIteration else { return }
        checkedIteration = reactor.iterations
        let v = try ready { try store.directoryVersion() }
        if v != cachedVersion {
            cachedVersion = v
            tokenCache.removeAll(keepingCapacity: true)
            mailboxCache = nil
            templateCache.removeAll(keepingCapacity: true)
        }
    }

    /// The directory's version as of this loop iteration (read at most once an iteration,
    /// whoever asks first: the requests' caches or the scheduler's routes); nil when the store
    /// cannot say.
    func currentVersion() -> Int64? {
        try? refreshIfChanged()
        return checkedIteration == reactor.iterations ? cachedVersion : nil
    }

    /// SPEC §4 step 1: 401 `unauthenticated` (with `WWW-Authenticate: Bearer`) for a missing,
    /// malformed, unknown or revoked token; 403 `forbidden` without `ability`.
    func authenticate(_ headers: HTTPHeaders, ability: String) throws -> StoredToken {
        try refreshIfChanged()
        // Two Authorization headers: which one is meant is the client's secret, not ours to pick.
        if headers.occurrences(of: "Authorization") > 1 { throw APIError.duplicateHeader("Authorization") }
        let token: StoredToken
        switch BearerToken.parse(authorization: headers["Authorization"]) {
        case .failure(.missing):
            throw APIError.unauthenticated()
        case .failure:
            throw APIError.unauthenticated("The bearer token is malformed, unknown or revoked.")
        case .success(let (id, secret)):
            switch BearerToken.verify(secret: secret, against: try lookupToken(id: id)) {
            case .failure:
                throw APIError.unauthenticated("The bearer token is malformed, unknown or revoked.")
            case .success(let t):
                token = t
            }
        }
        guard token.grants(ability) else { throw APIError.forbidden(ability: ability) }
        noteUse(token.id)
        return token
    }

    /// At most once a minute per token, a write that joins the next group commit.
    func noteUse(_ id: Int64) {
        let now = SendEmailService.nowMilliseconds()
        if let last = useWritten[id], now - last < Directory.useGranularityMilliseconds { return }
        useWritten[id] = now
        pendingUses.append(.tokenUsed(id: id, at: now))
    }

    /// A store that cannot answer yet (PostgreSQL not connected) is a 503, not a 500.
    func ready<T>(_ read: () throws -> T) throws -> T {
        do {
            return try read()
        } catch is StoreNotReady {
            throw APIError.unavailable
        }
    }

    func lookupToken(id: Int64) throws -> StoredToken? {
        if let t = tokenCache[id] { return t }
        guard let t = try ready({ try store.token(id: id) }) else { return nil }
        tokenCache[id] = t
        return t
    }

    func mailboxes() throws -> [MailboxRecord] {
        if let m = mailboxCache { return m }
        let m = try ready { try store.mailboxes() }
        mailboxCache = m
        return m
    }

    func template(_ identifier: String) throws -> EmailTemplate? {
        if let t = templateCache[identifier] { return t }
        guard let record = try ready({ try store.template(identifier: identifier) }) else { return nil }
        do {
            let t = try EmailTemplate(identifier: record.identifier, subject: record.subject, html: record.html, text: record.text)
            templateCache[identifier] = t
            return t
        } catch {
            logger.error("stored template \(identifier) does not parse: \(error)")
            throw APIError.internalError
        }
    }
}

extension Directory: CommitParticipant {
    var hasPendingWrites: Bool { !pendingUses.isEmpty }
    func takePendingWrites() -> [StatusWrite] {
        defer { pendingUses.removeAll(keepingCapacity: true) }
        return pendingUses
    }
    /// A failed commit loses these writes: the next minute's use writes again.
    func committed(_ ok: Bool) {}
}
