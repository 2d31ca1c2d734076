/// JSON parser and canonical form: a table of valid and invalid documents.
import Testing
@testable import JSON

@Suite struct JSONTests {
    @Test(arguments: [
        ("{}", JSONValue.object([])),
        ("[]", .array([])),
        (" {\"a\" : 1 , \"b\":[true,false,null]} ", .object([JSONMember(key: "a", value: .number("1")),
                                                           JSONMember(key: "b", value: .array([.bool(true), .bool(false), .null]))])),
        ("\"caf\\u00e9 \\ud83d\\ude00 \\n\\\"\"", .string("café 😀 \n\"")),
        ("-0.5e+10", .number("-0.5e+10")),
        ("\"é直接\"", .string("é直接")),
        ("0", .number("0")),
    ])
    func valid(text: String, expected: JSONValue) throws {
        #expect(try JSONParser.parse(Array(text.utf8)) == expected)
    }

    @Test(arguments: [
        "", " ", "{", "}", "[1,]", "{\"a\":1,}", "{'a':1}", "{\"a\" 1}", "01", "1.", ".5", "-", "1e", "+1", "NaN",
        "tru", "nul", "\"abc", "\"\\x\"", "\"\\ud800\"", "\"\\udc00\"", "\"a\u{1}b\"", "{\"a\":1,\"a\":2}", "{} {}",
        "[1] x", "\"\\u12\"", "{\"a\":1 /* c */}", String(repeating: "[", count: 100) + String(repeating: "]", count: 100),
    ])
    func invalid(text: String) {
        #expect(throws: JSONError.self) { try JSONParser.parse(Array(text.utf8)) }
    }

    @Test func invalidUTF8IsRejected() {
        #expect(throws: JSONError.self) { try JSONParser.parse([0x22, 0xC3, 0x28, 0x22]) }
        #expect(throws: JSONError.self) { try JSONParser.parse([0x22, 0x5C, 0x6E, 0xFF, 0x22]) }
    }

    /// Escapes exactly what RFC 8259 §7 requires (quote, backslash, controls); everything else,
    /// UTF-8 included, is copied as is — at the start, middle and end of a string.
    @Test(arguments: [
        ("", #""""#), ("plain", #""plain""#), ("a\"b", #""a\"b""#), ("\\", #""\\""#), ("\"start", #""\"start""#),
        ("end\\", #""end\\""#), ("\n\r\t", #""\n\r\t""#), ("\u{01}x\u{1f}", #""\u0001x\u001f""#),
        ("café 😀 直接", #""café 😀 直接""#), ("\u{7f}\u{2028}", "\"\u{7f}\u{2028}\""), ("a\u{0}b", #""a\u0000b""#),
    ])
    func writeStringEscapesWhatJSONRequires(input: String, expected: String) throws {
        var out: [UInt8] = [0x5B]
        JSONValue.writeString(input, into: &out)
        #expect(String(decoding: out.dropFirst(), as: UTF8.self) == expected)
        #expect(try JSONParser.parse(Array(out.dropFirst())) == .string(input))
    }

    @Test func canonicalFormIgnoresKeyOrderAndWhitespace() throws {
        let a = try JSONParser.parse(Array("{\"b\": {\"y\":1,\"x\":[2, {\"q\":1,\"p\":0}]}, \"a\":\"s\"}".utf8))
        let b = try JSONParser.parse(Array("{\"a\":\"s\",\"b\":{\"x\":[2,{\"p\":0,\"q\":1}],\"y\":1}}".utf8))
        #expect(a.canonicalBytes == b.canonicalBytes)
        #expect(String(decoding: a.canonicalBytes, as: UTF8.self) == "{\"a\":\"s\",\"b\":{\"x\":[2,{\"p\":0,\"q\":1}],\"y\":1}}")
        let c = try JSONParser.parse(Array("{\"a\":\"t\",\"b\":{\"x\":[2,{\"p\":0,\"q\":1}],\"y\":1}}".utf8))
        #expect(a.canonicalBytes != c.canonicalBytes)
        // Array order matters.
        let d = try JSONParser.parse(Array("[1,2]".utf8))
        let e = try JSONParser.parse(Array("[2,1]".utf8))
        #expect(d.canonicalBytes != e.canonicalBytes)
    }

    @Test func escapesRoundTrip() throws {
        let v = JSONValue.string("a\"b\\c\nd\u{1}é")
        #expect(try JSONParser.parse(v.compactBytes) == v)
    }
}
