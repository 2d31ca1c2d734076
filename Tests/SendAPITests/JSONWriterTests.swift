/// JSONWriter: commas between members and elements at every depth, escaping, null for nil.
import Foundation
import Testing
@testable import SendAPI

@Suite struct JSONWriterTests {
    @Test func nestedObjectsAndArraysAreValidJSON() throws {
        var w = JSONWriter(capacity: 64)
        w.open("{")
        w.add("ok", literal: "true")
        w.key("data")
        w.open("[")
        for i in 0..<3 {
            w.open("{")
            w.add("n", literal: String(i))
            w.add("s", i == 1 ? nil : "a\"b\n\u{1}")
            w.key("empty")
            w.open("[")
            w.close("]")
            w.close("}")
        }
        w.close("]")
        w.add("next", nil)
        w.close("}")
        #expect(w.out == #"{"ok":true,"data":[{"n":0,"s":"a\"b\n\u0001","empty":[]},{"n":1,"s":null,"empty":[]},{"n":2,"s":"a\"b\n\u0001","empty":[]}],"next":null}"#)
        #expect(try JSONSerialization.jsonObject(with: Data(w.out.utf8)) is [String: Any])
    }

    /// JSONText.appendString: values needing no escape are appended whole; the others escape
    /// quote, backslash, controls and U+2028/U+2029 (valid JSON that breaks JavaScript).
    @Test(arguments: [
        ("", #""""#), ("billing@tickiti.localhost", #""billing@tickiti.localhost""#), ("é 直接", #""é 直接""#),
        ("a\"b\\c", #""a\"b\\c""#), ("x\u{2028}y\u{2029}", #""x\u2028y\u2029""#), ("\u{1}\n", #""\u0001\n""#),
        ("€ is E2 82 AC", #""€ is E2 82 AC""#),
    ])
    func appendStringEscapes(input: String, expected: String) throws {
        var s = "["
        JSONText.appendString(input, to: &s)
        #expect(s == "[" + expected)
        #expect(try JSONSerialization.jsonObject(with: Data(expected.utf8), options: .fragmentsAllowed) as? String == input)
    }
}
