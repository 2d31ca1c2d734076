/// Records: what both stores read and write — plain values, no SQL.
import AuditAPI

public struct AuditFilter: Sendable, Equatable {
    public var recipient: String?
    public var status: String?
    /// Milliseconds since the epoch: `since ≤ accepted_at < until`.
    public var since: Int64?
    public var until: Int64?
    /// `metadata.KEY=VALUE`: entries that carry it (one index range of `message_metadata`).
    public var metadata: MetadataPair?
    /// One call's entry: by its Idempotency-Key or its Message-ID (one index each).
    public var idempotencyKey: String?
    public var messageID: String?

    public init(recipient: String? = nil, status: String? = nil, since: Int64? = nil, until: Int64? = nil, metadata: MetadataPair? = nil,
                idempotencyKey: String? = nil, messageID: String? = nil) {
        self.metadata = metadata
        self.idempotencyKey = idempotencyKey
        self.messageID = messageID
        self.recipient = recipient
        self.status = status
        self.since = since
        self.until = until
    }
}

/// Mailboxes: outbound identities with their relay DSN, in creation order.
public struct MailboxRecord: Sendable, Equatable {
    public var id: Int64
    public var name: String
    public var address: String
    public var displayName: String?
    public var dsn: String
    public var enabled: Bool
    public var createdAt: Int64
    /// The relay throttled or quota-paused the mailbox (SPEC §6): no new session before this.
    public var pause: MailboxPause?

    public init(id: Int64, name: String, address: String, displayName: String?, dsn: String, enabled: Bool, createdAt: Int64,
                pause: MailboxPause? = nil) {
        self.pause = pause
        self.id = id
        self.name = name
        self.address = address
        self.displayName = displayName
        self.dsn = dsn
        self.enabled = enabled
        self.createdAt = createdAt
    }
}

/// A mailbox the relay told to slow down (throttling, concurrency) or to stop (a quota): no new
/// session before `until`; `level` counts the pauses in a row (the backoff doubles with it).
public struct MailboxPause: Sendable, Equatable {
    public var until: Int64
    public var level: Int
    public var reason: String
    public init(until: Int64, level: Int, reason: String) {
        self.until = until
        self.level = level
        self.reason = reason
    }
}

public struct NewMessage: Sendable {
    public var acceptedAt: Int64
    public var tokenID: Int64
    public var tokenName: String
    public var idempotencyKey: String
    public var fingerprint: [UInt8]
    public var responseStatus: Int
    public var responseBody: [UInt8]
    public var mailboxName: String
    public var mailboxAddress: String
    public var recipient: String
    public var subject: String
    public var template: String?
    public var messageID: String
    public var raw: [UInt8]
    /// Every envelope recipient (To, Cc, Bcc) when there is more than the To; nil otherwise.
    public var recipients: [RecipientState]?
    /// The integrator's keys for finding it again; stored with the entry and indexed.
    public var metadata: [MetadataPair]

    public init(acceptedAt: Int64, tokenID: Int64, tokenName: String, idempotencyKey: String, fingerprint: [UInt8],
                responseStatus: Int, responseBody: [UInt8], mailboxName: String, mailboxAddress: String, recipient: String,
                subject: String, template: String?, messageID: String, raw: [UInt8], recipients: [RecipientState]? = nil,
                metadata: [MetadataPair] = []) {
        self.recipients = recipients
        self.metadata = metadata
        self.acceptedAt = acceptedAt
        self.tokenID = tokenID
        self.tokenName = tokenName
        self.idempotencyKey = idempotencyKey
        self.fingerprint = fingerprint
        self.responseStatus = responseStatus
        self.responseBody = responseBody
        self.mailboxName = mailboxName
        self.mailboxAddress = mailboxAddress
        self.recipient = recipient
        self.subject = subject
        self.template = template
        self.messageID = messageID
        self.raw = raw
    }
}

public struct AuditEntry: Sendable, Equatable {
    public var id: Int64
    public var acceptedAt: Int64
    public var sentAt: Int64?
    public var tokenName: String
    public var idempotencyKey: String
    public var mailboxName: String
    public var mailboxAddress: String
    public var recipient: String
    public var subject: String
    public var template: String?
    public var messageID: String
    public var status: String
    public var attempts: Int
    public var lastReply: String?
    /// Only filled by `auditEntry(id:)`.
    public var raw: [UInt8]
    /// Each envelope recipient with its state, when there is more than the To.
    public var recipients: [RecipientState]?
    public var metadata: [MetadataPair]
    /// When a `queued` or `deferred` entry is due (its next retry); nil when unknown.
    public var nextAttemptAt: Int64?

    public init(id: Int64, acceptedAt: Int64, sentAt: Int64?, tokenName: String, idempotencyKey: String, mailboxName: String, mailboxAddress: String, recipient: String, subject: String, template: String?, messageID: String, status: String, attempts: Int, lastReply: String?, raw: [UInt8], recipients: [RecipientState]? = nil, metadata: [MetadataPair] = [], nextAttemptAt: Int64? = nil) {
        self.nextAttemptAt = nextAttemptAt
        self.recipients = recipients
        self.metadata = metadata
        self.id = id
        self.acceptedAt = acceptedAt
        self.sentAt = sentAt
        self.tokenName = tokenName
        self.idempotencyKey = idempotencyKey
        self.mailboxName = mailboxName
        self.mailboxAddress = mailboxAddress
        self.recipient = recipient
        self.subject = subject
        self.template = template
        self.messageID = messageID
        self.status = status
        self.attempts = attempts
        self.lastReply = lastReply
        self.raw = raw
    }
}

/// A message as the scheduler needs it: where it goes and the exact bytes to carry.
public struct QueuedMessage: Sendable {
    public var id: Int64
    public var acceptedAt: Int64
    public var mailboxName: String
    public var from: String
    public var recipient: String
    public var messageID: String
    public var raw: [UInt8]
    public var attempts: Int
    /// Attempts that ended `uncertain` (no reply to the end of data).
    public var uncertainAttempts = 0
    /// The row is already `sending` (inserted so by the group commit that accepted it).
    public var markedSending: Bool
    /// More recipients than the To: each with its state (only `pending` ones get an RCPT).
    public var recipients: [RecipientState]?

    public init(id: Int64, acceptedAt: Int64, mailboxName: String, from: String, recipient: String, messageID: String, raw: [UInt8],
                attempts: Int, markedSending: Bool = false, recipients: [RecipientState]? = nil) {
        self.recipients = recipients
        self.id = id
        self.acceptedAt = acceptedAt
        self.mailboxName = mailboxName
        self.from = from
        self.recipient = recipient
        self.messageID = messageID
        self.raw = raw
        self.attempts = attempts
        self.markedSending = markedSending
    }
}

public struct DeliveryAttempt: Sendable, Equatable {
    public var at: Int64
    public var outcome: String
    public var reply: String

    public init(at: Int64, outcome: String, reply: String) {
        self.at = at
        self.outcome = outcome
        self.reply = reply
    }
}

/// Templates: subject, HTML and optional text Mustache sources by identifier (validated by
/// the caller before they are stored).
public struct TemplateRecord: Sendable, Equatable {
    public var identifier: String
    public var subject: String
    public var html: String
    public var text: String?
    public var updatedAt: Int64

    public init(identifier: String, subject: String, html: String, text: String?, updatedAt: Int64) {
        self.identifier = identifier
        self.subject = subject
        self.html = html
        self.text = text
        self.updatedAt = updatedAt
    }
}

public struct TokenSummary: Sendable, Equatable {
    public var id: Int64
    public var name: String
    public var abilities: [String]
    public var createdAt: Int64
    public var revokedAt: Int64?
    /// Its last authenticated request, to the minute (nil: never used).
    public var lastUsedAt: Int64?

    public init(id: Int64, name: String, abilities: [String], createdAt: Int64, revokedAt: Int64?, lastUsedAt: Int64? = nil) {
        self.lastUsedAt = lastUsedAt
        self.id = id
        self.name = name
        self.abilities = abilities
        self.createdAt = createdAt
        self.revokedAt = revokedAt
    }
}

/// What `serve` puts into an empty store (App's EmbeddedDefault): one mailbox, one template
/// and one token, written in one transaction only when the store has no mailbox and no token.
public struct DemoSeed: Sendable {
    public var mailboxName: String
    public var mailboxAddress: String
    public var mailboxDisplayName: String
    public var mailboxDSN: String
    public var templateIdentifier: String
    public var templateSubject: String
    public var templateHTML: String
    public var templateText: String
    public var tokenName: String
    public var tokenSecretHash: [UInt8]
    public var tokenAbilities: [String]
    public var now: Int64

    public init(mailboxName: String, mailboxAddress: String, mailboxDisplayName: String, mailboxDSN: String, templateIdentifier: String,
                templateSubject: String, templateHTML: String, templateText: String, tokenName: String, tokenSecretHash: [UInt8],
                tokenAbilities: [String], now: Int64) {
        self.mailboxName = mailboxName
        self.mailboxAddress = mailboxAddress
        self.mailboxDisplayName = mailboxDisplayName
        self.mailboxDSN = mailboxDSN
        self.templateIdentifier = templateIdentifier
        self.templateSubject = templateSubject
        self.templateHTML = templateHTML
        self.templateText = templateText
        self.tokenName = tokenName
        self.tokenSecretHash = tokenSecretHash
        self.tokenAbilities = tokenAbilities
        self.now = now
    }
}

extension AdminStore {
    /// `seed` written when the store has no mailbox and no token; the new token's id, or nil.
    public func seedIfEmpty(_ seed: DemoSeed) throws -> Int64? {
        try transaction {
            guard try mailboxes().isEmpty, try tokens().isEmpty else { return nil }
            _ = try addMailbox(name: seed.mailboxName, address: seed.mailboxAddress, displayName: seed.mailboxDisplayName,
                               dsn: seed.mailboxDSN, enabled: true, now: seed.now)
            try putTemplate(identifier: seed.templateIdentifier, subject: seed.templateSubject, html: seed.templateHTML,
                            text: seed.templateText, now: seed.now)
            return try createToken(name: seed.tokenName, secretHash: seed.tokenSecretHash, abilities: seed.tokenAbilities, now: seed.now)
        }
    }
}


/// One envelope recipient of a message with several (To, Cc, Bcc), and where it stands: each
/// is given the message once (`accepted`), refused for good (`failed`), or still `pending`
/// (refused for now: retried in a later transaction, as Postfix does).
public struct RecipientState: Sendable, Equatable {
    public enum Kind: String, Sendable { case to, cc, bcc }
    public enum Status: String, Sendable { case pending, accepted, failed }
    public var address: String
    public var kind: Kind
    public var status: Status
    public var lastReply: String?

    public init(address: String, kind: Kind, status: Status = .pending, lastReply: String? = nil) {
        self.address = address
        self.kind = kind
        self.status = status
        self.lastReply = lastReply
    }

    /// The stored form: a line per recipient, `kind status address[ reply]` (addresses never
    /// hold spaces or control characters; a reply's are replaced by spaces).
    public static func encode(_ list: [RecipientState]) -> String {
        list.map { r in
            var line = "\(r.kind.rawValue) \(r.status.rawValue) \(r.address)"
            if let reply = r.lastReply {
                line += " " + String(String.UnicodeScalarView(reply.unicodeScalars.map { $0.value < 0x20 || $0.value == 0x7F ? " " : $0 }))
            }
            return line
        }.joined(separator: "\n")
    }

    public static func decode(_ text: String?) -> [RecipientState]? {
        guard let text, !text.isEmpty else { return nil }
        return text.split(separator: "\n").compactMap { line in
            let parts = line.split(separator: " ", maxSplits: 3, omittingEmptySubsequences: false)
            guard parts.count >= 3, let kind = Kind(rawValue: String(parts[0])), let status = Status(rawValue: String(parts[1])) else { return nil }
            return RecipientState(address: String(parts[2]), kind: kind, status: status, lastReply: parts.count == 4 ? String(parts[3]) : nil)
        }
    }
}

/// One metadata key and value of an audit entry (keys `[A-Za-z0-9_-]{1,40}`, values without
/// control characters: SendAPI checks).
public struct MetadataPair: Sendable, Equatable {
    public var key: String
    public var value: String
    public init(key: String, value: String) {
        self.key = key
        self.value = value
    }

    /// The stored form on the entry's row: `key value` lines (a key has no space, a value no
    /// line break); nil for none.
    public static func encode(_ list: [MetadataPair]) -> String? {
        list.isEmpty ? nil : list.map { "\($0.key) \($0.value)" }.joined(separator: "\n")
    }

    public static func decode(_ text: String?) -> [MetadataPair] {
        guard let text, !text.isEmpty else { return [] }
        return text.split(separator: "\n", omittingEmptySubsequences: false).map { line in
            let parts = line.split(separator: " ", maxSplits: 1, omittingEmptySubsequences: false)
            return MetadataPair(key: String(parts[0]), value: parts.count > 1 ? String(parts[1]) : "")
        }
    }
}
