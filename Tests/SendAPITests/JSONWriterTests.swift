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
}
