/// Header names compare ASCII case-insensitively and nothing more: only A–Z fold, so
/// characters that differ by 0x20 outside the letters stay different, and lengths must match.
import Testing
@testable import HTTP1

@Suite struct HTTPHeadersTests {
    @Test(arguments: [
        ("Content-Type", "content-type", true), ("IDEMPOTENCY-KEY", "Idempotency-Key", true), ("", "", true),
        ("Content-Type", "Content-Typ", false), ("Content-Typ", "Content-Type", false), ("a", "", false),
        ("[", "{", false), ("@", "`", false), ("^", "~", false), ("X-Ä", "x-Ä", true), ("X-Ä", "X-ä", false),
        ("Host", "Hose", false), ("Authorization", "authorizatioN", true), ("Z", "z", true), ("A", "a", true),
        ("application/json; charset=utf-8", "APPLICATION/JSON; CHARSET=UTF-8", true),   // longer than a small string
        ("application/json; charset=utf-8", "application/json; charset=utf-9", false),
        ("x-a-very-long-header-name-indeed", "X-A-VERY-LONG-HEADER-NAME-INDEEd", true),
    ])
    func asciiCaseInsensitiveNames(a: String, b: String, equal: Bool) {
        #expect(asciiCaseInsensitiveEquals(a, b) == equal)
        #expect(asciiCaseInsensitiveEquals(b, a) == equal)
        #expect(asciiCaseInsensitiveEquals(Array(a.utf8), Array(b.utf8)) == equal)
        #expect(asciiCaseInsensitiveEquals(Array(a.utf8)[...], Array(b.utf8)) == equal)
    }

    /// Every pair of bytes: equal exactly when the same byte, or the same ASCII letter in either case.
    @Test func everyBytePair() {
        for x in 0...255 {
            for y in 0...255 {
                let fold: (Int) -> Int = { (65...90).contains($0) ? $0 + 32 : $0 }
                #expect(asciiCaseInsensitiveEquals([UInt8(x)], [UInt8(y)]) == (fold(x) == fold(y)))
            }
        }
    }

    @Test func lookUpFindsEveryValueWhateverTheCase() {
        let h = HTTPHeaders([(name: "Accept", value: "a"), (name: "X-Tag", value: "1"), (name: "x-tag", value: "2"), (name: "X-Ta", value: "no")])
        #expect(h.values(for: "X-TAG") == ["1", "2"])
        #expect(h["accept"] == "a")
        #expect(h["X-T"] == nil)
    }
}
