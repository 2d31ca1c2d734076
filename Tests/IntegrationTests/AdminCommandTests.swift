/// The admin subcommands as an operator runs them: token create/list/revoke and mailbox
/// add/list/enable/disable against a fresh database; bad input is one line and non-zero.
import Foundation
import Testing

@Suite struct AdminCommandTests {
    func tickiti(_ args: [String]) throws -> (Int32, String) {
        try run([binaryPath()] + args)
    }

    @Test func tokenLifecycle() throws {
        let db = makeTempDir() + "/t.db"
        let (rc, out) = try tickiti(["token", "create", "--db", db, "--name", "shop", "--ability", "send-email", "--ability", "audit-read"])
        #expect(rc == 0, "\(out)")
        let last = out.split(separator: "\n").last.map(String.init) ?? ""
        #expect(last.wholeMatch(of: /1\|[A-Za-z0-9]{40}/) != nil, "\(out)")
        let (rcDup, dup) = try tickiti(["token", "create", "--db", db, "--name", "shop", "--ability", "*"])
        #expect(rcDup != 0)
        #expect(dup.contains("already taken"))
        let (_, list) = try tickiti(["token", "list", "--db", db])
        #expect(list.contains("shop\taudit-read,send-email"))
        #expect(!list.contains(String(last.split(separator: "|")[1])))   // secrets are never listed
        #expect(try tickiti(["token", "revoke", "--db", db, "shop"]).0 == 0)
        let (rcAgain, again) = try tickiti(["token", "revoke", "--db", db, "shop"])
        #expect(rcAgain != 0 && again.contains("no active token"))
        #expect(try tickiti(["token", "list", "--db", db]).1.contains("revoked"))
    }

    @Test(arguments: [
        ["--ability", "nope"], [] as [String],
    ])
    func badTokenFlagsAreOneLine(extra: [String]) throws {
        let (rc, out) = try tickiti(["token", "create", "--db", makeTempDir() + "/t.db", "--name", "x"] + extra)
        #expect(rc != 0)
        #expect(out.split(separator: "\n").count == 1, "\(out)")
        #expect(out.hasPrefix("tickiti-mail: error:"))
    }

    @Test func mailboxLifecycle() throws {
        let db = makeTempDir() + "/m.db"
        let (rc, out) = try tickiti(["mailbox", "add", "--db", db, "--name", "support", "--address", "support@example.org",
                                     "--dsn", "smtp://user:s%3Acret@127.0.0.1:2525?starttls=opportunistic", "--display-name", "Support"])
        #expect(rc == 0, "\(out)")
        let (_, list) = try tickiti(["mailbox", "list", "--db", db])
        #expect(list.contains("support\tSupport <support@example.org>\tsmtp://user:***@127.0.0.1:2525"), "\(list)")
        #expect(!list.contains("s%3Acret"))
        #expect(try tickiti(["mailbox", "disable", "--db", db, "support"]).0 == 0)
        #expect(try tickiti(["mailbox", "list", "--db", db]).1.contains("disabled"))
        #expect(try tickiti(["mailbox", "enable", "--db", db, "nope"]).0 != 0)
    }

    @Test(arguments: [
        ("not-an-address", "file://out"), ("a@b", "ftp://x"), ("a@b", "smtp://h?starttls=maybe"),
        ("a@b", "smtp://h?ca_file=/nonexistent.pem"), ("a@b\r\nBcc: x@y", "file://out"), ("a@b", "smtp://h:99999"),
    ])
    func badMailboxesAreRefusedInOneLine(address: String, dsn: String) throws {
        let (rc, out) = try tickiti(["mailbox", "add", "--db", makeTempDir() + "/m.db", "--name", "m", "--address", address, "--dsn", dsn])
        #expect(rc != 0)
        #expect(out.split(separator: "\n").count == 1, "\(out)")
    }

    @Test func templatesAreCheckedAtAddTime() throws {
        let dir = makeTempDir()
        let db = dir + "/t.db"
        try "<p>{{invoice_number}} {{amount}}</p>".write(toFile: dir + "/ok.html", atomically: true, encoding: .utf8)
        try "<p>{{#open}}</p>".write(toFile: dir + "/bad.html", atomically: true, encoding: .utf8)
        let (rc, out) = try tickiti(["template", "add", "--db", db, "--identifier", "inv", "--subject", "Invoice {{invoice_number}}",
                                     "--html-file", dir + "/ok.html"])
        #expect(rc == 0 && out.contains("needs: invoice_number, amount"), "\(out)")
        let (rcBad, bad) = try tickiti(["template", "add", "--db", db, "--identifier", "bad", "--subject", "s", "--html-file", dir + "/bad.html"])
        #expect(rcBad != 0 && bad.contains("never closed") && bad.split(separator: "\n").count == 1, "\(bad)")
        let (rcMissing, _) = try tickiti(["template", "add", "--db", db, "--identifier", "x", "--subject", "s", "--html-file", dir + "/nope.html"])
        #expect(rcMissing != 0)
        #expect(try tickiti(["template", "list", "--db", db]).1.contains("inv\tInvoice {{invoice_number}}"))

        // A folder or an empty file is no template: refused in one line, the stored one kept.
        try "  \n".write(toFile: dir + "/empty.html", atomically: true, encoding: .utf8)
        for (file, says) in [(dir, "is a folder, not a file"), (dir + "/empty.html", "is empty")] {
            let (rc, out) = try tickiti(["template", "add", "--db", db, "--identifier", "inv", "--subject", "s", "--html-file", file])
            #expect(rc != 0 && out.contains(says) && out.split(separator: "\n").count == 1, "\(out)")
        }
        #expect(try tickiti(["template", "list", "--db", db]).1.contains("inv\tInvoice {{invoice_number}}"))
    }

    /// `--version`, and a mistyped subcommand at any level: one error line with a "did you mean",
    /// a usage line, exit status 64 (EX_USAGE, as ArgumentParser's own argument errors).
    @Test(arguments: [
        (["servee"], "unknown command 'servee' — did you mean 'tickiti-mail serve'?"),
        (["token", "crate"], "unknown command 'crate' — did you mean 'tickiti-mail token create'?"),
        (["mailbox", "lst"], "did you mean 'tickiti-mail mailbox list'?"),
        (["frobnicate"], "tickiti-mail: error: unknown command 'frobnicate'\nUsage: tickiti-mail serve|token|"),
    ])
    func mistypedCommandsGetADidYouMean(args: [String], says: String) throws {
        let (rc, out) = try tickiti(args)
        #expect(rc == 64)
        #expect(out.contains(says), "\(out)")
        #expect(out.split(separator: "\n").count == 2, "\(out)")
    }

    /// One convention for every error: 64 (EX_USAGE) for a command used wrongly — ArgumentParser's
    /// own and the product's checks of values alike — and 1 for a failure; one line each.
    @Test(arguments: [
        (["token", "create", "--name", "x", "--ability", "nope"], Int32(64)),
        (["token", "create", "--name", "x"], 64),
        (["mailbox", "add", "--name", "m", "--address", "not-an-address", "--dsn", "file://out"], 64),
        (["mailbox", "update", "m"], 64),
        (["audit", "list", "--since", "yesterday"], 64),
        (["audit", "list", "--limit", "0"], 64),
        (["mailbox", "enable", "nope"], 1),
        (["token", "revoke", "nope"], 1),
        (["template", "remove", "nope"], 1),
        (["audit", "show", "99"], 1),
    ] as [([String], Int32)])
    func exitCodes(args: [String], code: Int32) throws {
        let db = makeTempDir() + "/t.db"
        _ = try tickiti(["token", "list", "--db", db])
        let (rc, out) = try tickiti(Array(args.prefix(2)) + ["--db", db] + args.dropFirst(2))
        #expect(rc == code, "\(args): \(out)")
        #expect(out.split(separator: "\n").first?.hasPrefix("tickiti-mail: error:") == true || out.hasPrefix("Error:"), "\(out)")
    }

    @Test func versionIsPrinted() throws {
        let (rc, out) = try tickiti(["--version"])
        #expect(rc == 0 && out.hasPrefix("tickiti-mail "), "\(out)")
    }

    /// A file:// mailbox whose folder cannot be made (a file in the way) fails at `mailbox add`,
    /// not with every delivery for a day; an unencoded @ in a user name is refused.
    @Test func mailboxDSNsThatCouldNeverWorkAreRefused() throws {
        let dir = makeTempDir()
        try "x".write(toFile: dir + "/plain", atomically: true, encoding: .utf8)
        let (rc, out) = try tickiti(["mailbox", "add", "--db", dir + "/m.db", "--name", "m", "--address", "a@b.example",
                                     "--dsn", "file://" + dir + "/plain/out"])
        #expect(rc != 0 && out.contains("\(dir)/plain is a file") && out.split(separator: "\n").count == 1, "\(out)")
        let (rcAt, at) = try tickiti(["mailbox", "add", "--db", dir + "/m.db", "--name", "m", "--address", "a@b.example",
                                      "--dsn", "smtp://us@r:p@ss@relay.example"])
        #expect(rcAt != 0 && at.contains("%40"), "\(at)")
        // A folder that does not exist yet is fine: delivery makes it.
        #expect(try tickiti(["mailbox", "add", "--db", dir + "/m.db", "--name", "m", "--address", "a@b.example",
                             "--dsn", "file://" + dir + "/new/out"]).0 == 0)
    }
}
