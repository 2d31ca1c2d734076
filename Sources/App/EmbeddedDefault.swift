/// EmbeddedDefault: what `tickiti-mail serve` sets up on a fresh database — only when it has
/// no mailbox and no token — so the README's first command works as pasted: a demo mailbox on
/// the `file://` transport, the `invoice_delivery` template (placeholders `invoice_number`,
/// `amount`, `due_date`) and a `send-email` token, shown once with a working `curl` line.
import Auth
import Logging
import Store

enum EmbeddedDefault {
    static let mailboxName = "demo"
    static let mailboxAddress = "billing@tickiti.localhost"
    static let outbox = "file://data/outbox"
    static let templateIdentifier = "invoice_delivery"
    static let subject = "Invoice {{invoice_number}}"
    static let html = """
        <html><body style="font-family: sans-serif">
        <h1>Invoice {{invoice_number}}</h1>
        <p>Hello,</p>
        <p>please find your invoice <strong>{{invoice_number}}</strong> over <strong>{{amount}}</strong>,
        due on <strong>{{due_date}}</strong>.</p>
        <p>Thank you for your business.</p>
        </body></html>
        """
    static let text = """
        Invoice {{invoice_number}}

        Hello,

        please find your invoice {{invoice_number}} over {{amount}}, due on {{due_date}}.

        Thank you for your business.
        """

    /// Creates the demo when the database is empty; returns the token (shown once) or nil.
    static func createIfEmpty(_ db: AdminStore, logger: Logger) throws -> String? {
        guard try db.mailboxes().isEmpty, try db.tokens().isEmpty else { return nil }
        let now = SendEmailService.nowMilliseconds()
        var rng = SystemRandomNumberGenerator()
        let secret = BearerToken.makeSecret(using: &rng)
        var id: Int64 = 0
        try db.transaction {
            _ = try db.addMailbox(name: mailboxName, address: mailboxAddress, displayName: "Tickiti Demo Billing",
                                  dsn: outbox, enabled: true, now: now)
            try db.putTemplate(identifier: templateIdentifier, subject: subject, html: html, text: text, now: now)
            id = try db.createToken(name: "demo", secretHash: BearerToken.hash(secret: secret), abilities: [Ability.sendEmail], now: now)
        }
        logger.notice("empty database: created the demo mailbox \(mailboxName) (\(outbox)), template \(templateIdentifier) and a send-email token")
        return "\(id)|\(secret)"
    }

    static func banner(token: String, url: String, caFile: String?) -> [String] {
        let cacert = caFile.map { "--cacert \($0) " } ?? ""
        return [
            "demo token (shown once): \(token)",
            "the message is delivered to data/outbox/<id>.eml (tickiti-mail audit list shows it); try it:",
            "curl \(cacert)\(url)/api/send_email -H 'Authorization: Bearer \(token)' -H \"Idempotency-Key: $(cat /proc/sys/kernel/random/uuid)\" -H 'Content-Type: application/json' -d '{\"to_address\":\"customer@example.com\",\"template_identifier\":\"invoice_delivery\",\"data\":{\"invoice_number\":\"INV-2026-0001\",\"amount\":\"120.00 EUR\",\"due_date\":\"2026-12-31\"}}'",
            "the sent-mail audit page: \(url)/audit (make a token for it: tickiti-mail token create --name support --ability audit-read)",
        ]
    }
}
