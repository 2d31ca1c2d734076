/// JSON parser and canonical form: a table of valid and invalid documents.
import Testing
@testable import JSON

@Suite struct JSONTests {
    /// The writer skips eight bytes a word too: every escape at every offset comes back.
    @Test func theWriterEscapesAtEveryOffset() throws {
        for length in 1..<40 {
            for position in 0..<length {
                for special in ["\"", "\\", "\n", "\u{01}", "\u{1F}", "é", "/"] {
                    var chars = Array(String(repeating: "x", count: length))
                    chars[position] = Character(special)
                    let text = String(chars)
                    let written = JSONValue.string(text).canonicalBytes
                    #expect(try JSONParser.parse(written) == .string(text), "\(text.debugDescription)")
                    #expect(!written.dropFirst().dropLast().contains { $0 < 0x20 }, "no raw control byte")
                }
            }
        }
    }

    /// The string scanner reads eight bytes at a time: whatever special byte (an escape, the
    /// closing quote, a control character, a non-ASCII character) sits at whatever offset of
    /// a word, the result is the byte-at-a-time one.
    @Test func specialBytesAtEveryOffsetOfTheWordScan() throws {
        for length in 0..<40 {
            for position in 0..<max(length, 1) {
                let filler = String(repeating: "x", count: length)
                func at(_ insert: String) -> String {
                    var chars = Array(filler)
                    if position < chars.count { chars.remove(at: position) }
                    return String(chars.prefix(position)) + insert + String(chars.dropFirst(position))
                }
                #expect(try JSONParser.parse(Array("\"\(at("\\n"))\"".utf8)) == .string(at("\n")))
                #expect(try JSONParser.parse(Array("\"\(at("é"))\"".utf8)) == .string(at("é")))
                #expect(throws: JSONError.self) { try JSONParser.parse(Array("\"\(at("\u{01}"))\"".utf8)) }
                #expect(throws: JSONError.self) { try JSONParser.parse(Array("\"\(at("\u{1F}"))\"".utf8)) }
                #expect(throws: JSONError.self) { try JSONParser.parse(Array("\"\(at("\u{FF}"))".utf8.map { $0 == 0xC3 ? 0xFF : $0 } + [0x22])) }
            }
            #expect(try JSONParser.parse(Array("\"\(String(repeating: "y", count: length))\"".utf8)) == .string(String(repeating: "y", count: length)))
        }
    }

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

    /// Duplicate keys are found wherever they are — within the first `scanLimit` keys (the
    /// scan), across the boundary, and deep in a large object (the set) — and a large object
    /// without duplicates parses with every member in order.
    @Test(arguments: [(1, 0), (15, 3), (16, 2), (17, 16), (500, 499), (9_999, 17)])
    func duplicateKeysAreFoundInObjectsOfAnySize(count: Int, duplicateOf: Int) throws {
        var text = "{"
        for k in 0..<count { text += "\"k\(k)\":\(k)," }
        let unique = String(text.dropLast()) + "}"
        guard case .object(let members) = try JSONParser.parse(Array(unique.utf8)) else { Issue.record("not an object"); return }
        #expect(members.count == count && members.last?.key == "k\(count - 1)" && members.first?.key == "k0")
        let dup = text + "\"k\(duplicateOf)\":0}"
        #expect(throws: JSONError(offset: dup.utf8.count - 1, reason: "duplicate key \"k\(duplicateOf)\"")) {
            try JSONParser.parse(Array(dup.utf8))
        }
    }

    /// The caps: members per object and values per document, each with a clear reason.
    @Test func membersAndValuesAreCapped() throws {
        var big = "{"
        for k in 0...JSONParser.maxMembersPerObject { big += "\"k\(k)\":1," }
        big = String(big.dropLast()) + "}"
        #expect { try JSONParser.parse(Array(big.utf8)) } throws: { ($0 as? JSONError)?.reason.contains("more than 10000 members") == true }
        let many = "[" + Array(repeating: "1", count: JSONParser.maxValues).joined(separator: ",") + "]"
        #expect { try JSONParser.parse(Array(many.utf8)) } throws: { ($0 as? JSONError)?.reason.contains("more than 200000 values") == true }
        let enough = "[" + Array(repeating: "1", count: JSONParser.maxValues - 1).joined(separator: ",") + "]"
        #expect(throws: Never.self) { try JSONParser.parse(Array(enough.utf8)) }
    }

    @Test func invalidUTF8IsRejected() {
        #expect(throws: JSONError.self) { try JSONParser.parse([0x22, 0xC3, 0x28, 0x22]) }
        #expect(throws: JSONError.self) { try JSONParser.parse([0x22, 0x5C, 0x6E, 0xFF, 0x22]) }
    }

    /// A string without escapes is taken as is when every byte is ASCII and validated otherwise:
    /// whatever the bytes, the parser agrees with `String(validating:)` (a value when they are
    /// UTF-8, an error when not) — high bytes at the start, middle and end, and the classic
    /// invalid forms (lone continuation, truncated, overlong, surrogate, beyond U+10FFFF).
    @Test(arguments: [
        [UInt8](), Array("plain ascii ~".utf8), [0xC3, 0xA9], Array("caf".utf8) + [0xC3, 0xA9],
        [0xE7, 0x9B, 0xB4] + Array("x".utf8), Array("a".utf8) + [0xF0, 0x9F, 0x98, 0x80] + Array("b".utf8),
        [0x80], Array("ab".utf8) + [0xC3], [0xE2, 0x82], [0xC0, 0x80], [0xED, 0xA0, 0x80], [0xF4, 0x90, 0x80, 0x80],
        Array("x".utf8) + [0xFF] + Array("y".utf8), [0x7F],
    ])
    func unescapedStringsAgreeWithValidation(bytes: [UInt8]) throws {
        let document = [0x22] + bytes + [0x22]
        let key = [0x7B, 0x22] + bytes + [0x22, 0x3A, 0x31, 0x7D]   // {"…":1}
        if let expected = String(validating: bytes, as: UTF8.self) {
            #expect(try JSONParser.parse(document) == .string(expected))
            #expect(try JSONParser.parse(key) == .object([JSONMember(key: expected, value: .number("1"))]))
        } else {
            #expect(throws: JSONError.self) { try JSONParser.parse(document) }
            #expect(throws: JSONError.self) { try JSONParser.parse(key) }
        }
    }

    /// The same agreement over random byte strings (fixed seed; no quote, backslash or control).
    @Test func randomUnescapedStringsAgreeWithValidation() throws {
        var state: UInt64 = 0x9E37_79B9_7F4A_7C15
        func next() -> UInt64 { state = state &* 6364136223846793005 &+ 1442695040888963407; return state >> 33 }
        for _ in 0..<2000 {
            let bytes = (0..<Int(next() % 12)).map { _ -> UInt8 in
                let b = next() % 3 == 0 ? UInt8(0x80 + next() % 0x80) : UInt8(0x20 + next() % 0x5F)
                return b == 0x22 || b == 0x5C ? 0x41 : b
            }
            let document = [0x22] + bytes + [0x22]
            if let expected = String(validating: bytes, as: UTF8.self) {
                #expect(try JSONParser.parse(document) == .string(expected))
            } else {
                #expect(throws: JSONError.self) { try JSONParser.parse(document) }
            }
        }
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
