/// EmbeddedDefault: what `tickiti-mail serve` sets up on a fresh database — only when it has
/// no mailbox and no token — so the README's first command works as pasted: a demo mailbox on
/// the `file://` transport, the `invoice_delivery` template (placeholders `invoice_number`,
/// `amount`, `due_date`) and a `send-email` token, shown once with a working `curl` line.
#if canImport(Glibc)
import Glibc
#endif
import Auth
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

    /// The demo as the store writes it (`ServerStore.seedIfEmpty`), and its token's secret.
    static func seed() -> (DemoSeed, secret: String) {
        var rng = SystemRandomNumberGenerator()
        let secret = BearerToken.makeSecret(using: &rng)
        let seed = DemoSeed(mailboxName: mailboxName, mailboxAddress: mailboxAddress, mailboxDisplayName: "Tickiti Demo Billing",
                            mailboxDSN: outbox, templateIdentifier: templateIdentifier, templateSubject: subject, templateHTML: html,
                            templateText: text, tokenName: "demo", tokenSecretHash: BearerToken.hash(secret: secret),
                            tokenAbilities: [Ability.sendEmail], now: SendEmailService.nowMilliseconds())
        return (seed, secret)
    }

    /// The commands as this process can be started again from here: its own path (relative to
    /// the working directory when under it, as `swift run` leaves it), so they work as printed
    /// whether or not `tickiti-mail` is on PATH.
    static func commandName(argv0: String = CommandLine.arguments.first ?? "tickiti-mail", cwd: String? = currentDirectory()) -> String {
        guard argv0.contains("/") else { return argv0 }
        if let cwd, argv0.hasPrefix(cwd + "/") { return "./" + argv0.dropFirst(cwd.count + 1) }
        return argv0
    }

    static func currentDirectory() -> String? {
        var buf = [CChar](repeating: 0, count: 4096)
        guard getcwd(&buf, buf.count) != nil else { return nil }
        return String(decoding: buf.prefix { $0 != 0 }.map { UInt8(bitPattern: $0) }, as: UTF8.self)
    }

    static func banner(token: String, url: String, caFile: String?, command: String = commandName()) -> [String] {
        let cacert = caFile.map { "--cacert \($0) " } ?? ""
        return [
            "demo token (shown once): \(token)",
            "the message is delivered to data/outbox/<id>.eml (\(command) audit list shows it); try it:",
            "curl \(cacert)\(url)/api/send_email -H 'Authorization: Bearer \(token)' -H \"Idempotency-Key: $(cat /proc/sys/kernel/random/uuid)\" -H 'Content-Type: application/json' -d '{\"to_address\":\"customer@example.com\",\"template_identifier\":\"invoice_delivery\",\"data\":{\"invoice_number\":\"INV-2026-0001\",\"amount\":\"120.00 EUR\",\"due_date\":\"2026-12-31\"}}'",
            "the sent-mail audit page: \(url)/audit (make a token for it: \(command) token create --name support --ability audit-read)",
        ]
    }
}
