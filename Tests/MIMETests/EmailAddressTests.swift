/// Recipient checks: the always-on injection guard and the full syntax check, as tables
/// (valid, invalid, injection attempts, UTF-8).
import Testing
@testable import MIME

@Suite struct EmailAddressTests {
    static let valid = [
        "alice@example.org", "a@b.co", "first.last@example.org", "user+tag@example.org", "x_y-z@sub.example.co.uk",
        "o'brien@example.ie", "{weird}!#$%&*=?^`|~@example.org", "\"quoted@name\"@example.org", "\"a\\\"b\"@example.org",
        "user@[192.168.1.1]", "user@[IPv6:2001:db8::1]", "user@[IPv6:::1]", "user@[IPv6:2001:db8:0:0:0:0:2:1]",
        "jöran@exämple.de", "用户@例子.广告", "θσερ@παράδειγμα.δοκιμή", "1234567890@numbers.example", "a@xn--bcher-kva.example",
        "\(String(repeating: "l", count: 64))@example.org", "user@\(String(repeating: "d", count: 63)).org",
        "UPPER@EXAMPLE.ORG", "a.b.c.d@e.f.g.h",
    ]

    static let invalidSyntax = [
        "plainaddress@localhost", ".leading@example.org", "trailing.@example.org", "two..dots@example.org",
        "\(String(repeating: "l", count: 65))@example.org", "user@\(String(repeating: "d", count: 64)).org",
        "user@-example.org", "user@example-.org", "user@exa_mple.org", "user@example..org", "user@.example.org",
        "user@example.org.", "user@[300.1.1.1]", "user@[1.2.3]", "user@[IPv6:2001:db8::1::2]", "user@[IPv6:xyz::1]",
        "user@123.456", "a\"b@example.org", "\"unclosed@example.org", "user@example.o\u{0}rg".filter { $0 != "\u{0}" } + "(",
        "user@ex!ample.org", "user@[1.2.3.4", "user(comment)@example.org", "\(String(repeating: "a", count: 64))@\(String(repeating: "b", count: 63)).\(String(repeating: "c", count: 63)).\(String(repeating: "d", count: 63)).com",
    ]

    static let injections = [
        "", "no-at-sign", "@example.org", "user@", "a b@example.org", "user@example.org\r\nBcc: x@evil.example",
        "user@example.org\nRCPT TO:<x@evil.example>", "<user@example.org>", "user@example.org>", "a@b.org,c@d.org",
        "a@b.org;c@d.org", "user\t@example.org", "user@example.org\u{0}", "user@exa\u{7f}mple.org", "user@\u{85}example.org",
        "us\u{2028}er@example.org", "user@example.org ", " user@example.org", "user@exam\u{a0}ple.org", "\"quoted name\"@example.org",
    ]

    @Test(arguments: valid)
    func validAddressesPassBothChecks(_ a: String) {
        #expect(EmailAddress.injectionProblem(a) == nil)
        #expect(EmailAddress.syntaxProblem(a) == nil, "\(a): \(EmailAddress.syntaxProblem(a) ?? "")")
    }

    @Test(arguments: invalidSyntax)
    func syntaxErrorsAreCaughtOnlyByTheFullCheck(_ a: String) {
        #expect(EmailAddress.syntaxProblem(a) != nil, "\(a) accepted")
    }

    @Test(arguments: injections)
    func injectionAttemptsAreAlwaysRefused(_ a: String) {
        #expect(EmailAddress.injectionProblem(a) != nil, "\(a.debugDescription) accepted")
        #expect(EmailAddress.syntaxProblem(a) != nil)
    }

    @Test func atLeastSixtyCases() {
        #expect(Self.valid.count + Self.invalidSyntax.count + Self.injections.count >= 60)
    }
}
