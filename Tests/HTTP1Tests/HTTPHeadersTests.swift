/// Header names compare ASCII case-insensitively and nothing more: only A–Z fold, so
/// characters that differ by 0x20 outside the letters stay different, and lengths must match.
import Testing
@testable import HTTP1

@Suite struct HTTPHeadersTests {
    @Test(arguments: [
        ("Content-Type", "content-type", true), ("IDEMPOTENCY-KEY", "Idempotency-Key", true), ("", "", true),
        ("Content-Type", "Content-Typ", false), ("Content-Typ", "Content-Type", false), ("a", "", false),
        ("[", "{", false), ("@", "`", false), ("^", "~", false), ("X-Ä", "x-Ä", true), ("X-Ä", "X-ä", false),
        ("Host", "Hose", false), ("Authorization", "authorizatioN", true),
    ])
    func asciiCaseInsensitiveNames(a: String, b: String, equal: Bool) {
        #expect(asciiCaseInsensitiveEquals(a, b) == equal)
        #expect(asciiCaseInsensitiveEquals(b, a) == equal)
    }

    @Test func lookUpFindsEveryValueWhateverTheCase() {
        let h = HTTPHeaders([(name: "Accept", value: "a"), (name: "X-Tag", value: "1"), (name: "x-tag", value: "2"), (name: "X-Ta", value: "no")])
        #expect(h.values(for: "X-TAG") == ["1", "2"])
        #expect(h["accept"] == "a")
        #expect(h["X-T"] == nil)
    }
}
