/// SPEC §4 "Beyond the seed", row by row: each field with valid inputs and the invalid ones
/// that must be refused, named by field (and index) — plus unknown fields, refused by name.
import JSON
import MIME
import Testing
@testable import SendAPI

@Suite struct OptionalFieldsTests {
    static let base = #""to_address":"a@b.example","subject":"s","content":"<p>c</p>""#

    func accept(_ extra: String, maxAttachmentBytes: Int = SendAPI.defaultMaxAttachmentBytes) throws -> SendRequest {
        try SendAPI.validate(body("{\(Self.base),\(extra)}"), maxAttachmentBytes: maxAttachmentBytes).get()
    }

    /// Unknown fields: each named, so a typo never skips what it meant (SPEC §4).
    @Test(arguments: [
        (#""validate_adress":true"#, "validate_adress", "is not a known field"),
        (#""Subject":"x""#, "Subject", "is not a known field"),
        (#""attachment":[]"#, "attachment", "is not a known field"),
    ])
    func unknownFieldsAreRefusedByName(extra: String, field: String, message: String) {
        guard case .failure(let e) = SendAPI.validate(body("{\(Self.base),\(extra)}")) else { Issue.record("accepted \(extra)"); return }
        #expect(e.status == 422)
        #expect(e.fields.first { $0.0 == field }?.1 == [message], "\(e.fields)")
    }

    @Test func textReplacesTheDerivedPart() throws {
        #expect(try accept(#""text":"Plain words""#).text == "Plain words")
        #expect(try accept(#""text":null"#).text == nil)
    }

    @Test(arguments: [
        (#""text":"""#, "text"), (#""text":5"#, "text"),
    ])
    func badText(extra: String, field: String) {
        guard case .failure(let e) = SendAPI.validate(body("{\(Self.base),\(extra)}")) else { Issue.record("accepted \(extra)"); return }
        #expect(e.fields.map(\.0) == [field])
    }

    @Test func textIsShapeAOnly() {
        let b = body(#"{"to_address":"a@b.example","template_identifier":"t","data":{},"text":"x"}"#)
        guard case .failure(let e) = SendAPI.validate(b) else { Issue.record("accepted"); return }
        #expect(e.fields.map(\.0) == ["text"])
        #expect(e.fields[0].1[0].contains("only for subject/content"))
    }

    @Test func replyToAsStringOrArrayDeduplicated() throws {
        #expect(try accept(#""reply_to":"help@shop.example""#).replyTo == ["help@shop.example"])
        #expect(try accept(#""reply_to":["x@shop.example","X@Shop.example","y@shop.example"]"#).replyTo == ["x@shop.example", "y@shop.example"])
    }

    @Test(arguments: [
        (#""reply_to":5"#, "reply_to"),
        (#""reply_to":[]"#, "reply_to"),
        (#""reply_to":["a@b.example",7]"#, "reply_to[1]"),
        (#""reply_to":"a@b.example\r\nBcc: x@y.example""#, "reply_to"),
        (#""reply_to":["ok@b.example","a@b.example, x@y.example"]"#, "reply_to[1]"),
        (#""reply_to":["a@b.example","b@b.example","c@b.example","d@b.example","e@b.example","f@b.example"]"#, "reply_to"),
        (#""reply_to":"no-at-sign""#, "reply_to"),
        (#""reply_to":"a@localhost","validate_address":true"#, "reply_to"),
    ])
    func badReplyTo(extra: String, field: String) {
        guard case .failure(let e) = SendAPI.validate(body("{\(Self.base),\(extra)}")) else { Issue.record("accepted \(extra)"); return }
        #expect(e.fields.map(\.0) == [field], "\(e.fields)")
    }

    @Test func ccAndBccDeduplicatedAcrossFields() throws {
        let r = try accept(#""cc":["x@shop.example","A@B.example","y@shop.example"],"bcc":["X@shop.example","z@shop.example"]"#)
        #expect(r.cc == ["x@shop.example", "y@shop.example"], "the To (a@b.example) once")
        #expect(r.bcc == ["z@shop.example"], "x@ is already a Cc")
        #expect(try accept(#""cc":"c@shop.example""#).cc == ["c@shop.example"])
    }

    @Test(arguments: [
        (#""cc":5"#, "cc"),
        (#""cc":["ok@b.example","bad address@b.example"]"#, "cc[1]"),
        (#""bcc":"x@y.example\r\nRCPT TO:<z@w.example>""#, "bcc"),
        (#""bcc":["a@b.example>"]"#, "bcc[0]"),
        (#""cc":"a@localhost","validate_address":true"#, "cc"),
        (#""cc":[]"#, "cc"),
    ])
    func badCcAndBcc(extra: String, field: String) {
        guard case .failure(let e) = SendAPI.validate(body("{\(Self.base),\(extra)}")) else { Issue.record("accepted \(extra)"); return }
        #expect(e.fields.map(\.0) == [field], "\(e.fields)")
    }

    @Test func atMostFiftyRecipientsInAll() throws {
        func list(_ n: Int, _ p: String) -> String { "[" + (0..<n).map { "\"\(p)\($0)@shop.example\"" }.joined(separator: ",") + "]" }
        #expect(try accept("\"cc\":\(list(30, "c")),\"bcc\":\(list(19, "b"))").bcc.count == 19)
        guard case .failure(let e) = SendAPI.validate(body("{\(Self.base),\"cc\":\(list(30, "c")),\"bcc\":\(list(20, "b"))}")) else {
            Issue.record("accepted 51 recipients"); return
        }
        #expect(e.fields.map(\.0) == ["bcc"])
        #expect(e.fields[0].1[0].contains("at most 50"))
    }

    @Test func metadataKeysAndValues() throws {
        let r = try accept(#""metadata":{"order":"SP-2412-0489","customer_id":"C-7","Region-EU":"ü"}"#)
        #expect(r.metadata == [MetadataItem(key: "order", value: "SP-2412-0489"), MetadataItem(key: "customer_id", value: "C-7"),
                               MetadataItem(key: "Region-EU", value: "ü")])
        #expect(try accept("\"metadata\":{\"k\":\"\(String(repeating: "é", count: 500))\"}").metadata.count == 1)
    }

    @Test(arguments: [
        (#""metadata":"order=1""#, "metadata"),
        (#""metadata":{"order id":"1"}"#, "metadata.order id"),
        (#""metadata":{"":"1"}"#, "metadata."),
        (#""metadata":{"a.b":"1"}"#, "metadata.a.b"),
        ("\"metadata\":{\"\(String(repeating: "k", count: 41))\":\"1\"}", "metadata.\(String(repeating: "k", count: 41))"),
        (#""metadata":{"order":1}"#, "metadata.order"),
        (#""metadata":{"order":"a\nb"}"#, "metadata.order"),
        ("\"metadata\":{\"k\":\"\(String(repeating: "v", count: 501))\"}", "metadata.k"),
        (#""metadata":{"a":"1","b":"1","c":"1","d":"1","e":"1","f":"1","g":"1","h":"1","i":"1","j":"1","k":"1"}"#, "metadata"),
    ])
    func badMetadata(extra: String, field: String) {
        guard case .failure(let e) = SendAPI.validate(body("{\(Self.base),\(extra)}")) else { Issue.record("accepted \(extra)"); return }
        #expect(e.fields.map(\.0) == [field], "\(e.fields)")
    }

    @Test func headersOfTheAllowList() throws {
        let r = try accept(#""headers":{"X-Order-Id":"SP-1","list-unsubscribe":"<https://shop.example/u?1>","In-Reply-To":"<a@b>","X-Note":"Grüße"}"#)
        #expect(r.headers == [MessageHeader(name: "X-Order-Id", value: "SP-1"), MessageHeader(name: "List-Unsubscribe", value: "<https://shop.example/u?1>"),
                              MessageHeader(name: "In-Reply-To", value: "<a@b>"), MessageHeader(name: "X-Note", value: "Grüße")])
    }

    @Test(arguments: [
        (#""headers":{"From":"x@y.example"}"#, "headers.From"),
        (#""headers":{"Subject":"x"}"#, "headers.Subject"),
        (#""headers":{"bcc":"x@y.example"}"#, "headers.bcc"),
        (#""headers":{"Content-Type":"text/plain"}"#, "headers.Content-Type"),
        (#""headers":{"MIME-Version":"1.0"}"#, "headers.MIME-Version"),
        (#""headers":{"DKIM-Signature":"v=1"}"#, "headers.DKIM-Signature"),
        (#""headers":{"Message-ID":"<x@y>"}"#, "headers.Message-ID"),
        (#""headers":{"Return-Path":"<x@y>"}"#, "headers.Return-Path"),
        (#""headers":{"X-":"v"}"#, "headers.X-"),
        (#""headers":{"X Bad":"v"}"#, "headers.X Bad"),
        (#""headers":{"X-Colon:":"v"}"#, "headers.X-Colon:"),
        (#""headers":{"X-A":"v\r\nBcc: x@y.example"}"#, "headers.X-A"),
        (#""headers":{"X-A":"nul\u0000"}"#, "headers.X-A"),
        (#""headers":{"X-A":"esc\u001b"}"#, "headers.X-A"),
        (#""headers":{"X-A":""}"#, "headers.X-A"),
        (#""headers":{"X-A":5}"#, "headers.X-A"),
        (#""headers":{"X-A":"1","x-a":"2"}"#, "headers.x-a"),
        (#""headers":["X-A"]"#, "headers"),
    ])
    func badHeaders(extra: String, field: String) {
        guard case .failure(let e) = SendAPI.validate(body("{\(Self.base),\(extra)}")) else { Issue.record("accepted \(extra)"); return }
        #expect(e.fields.map(\.0) == [field], "\(e.fields)")
    }

    @Test func aLongHeaderValueIsRefused() {
        let v = String(repeating: "v", count: SendAPI.maxHeaderValueBytes + 1)
        guard case .failure(let e) = SendAPI.validate(body("{\(Self.base),\"headers\":{\"X-Long\":\"\(v)\"}}")) else { Issue.record("accepted"); return }
        #expect(e.fields.map(\.0) == ["headers.X-Long"])
    }

    @Test func attachmentsAreCheckedAndTyped() throws {
        let r = try accept(#""attachments":[{"filename":"Invoice 42.PDF","content":"JVBE\r\nRi0x"},{"filename":"logo.png","content":"iVBORw==","content_id":"logo@shop"},{"filename":"data.bin","content":"","content_type":"Application/X-Custom"},{"filename":"notes","content":"YQ=="}]"#)
        #expect(r.attachments.map(\.contentType) == ["application/pdf", "image/png", "application/x-custom", "application/octet-stream"])
        #expect(r.attachments.map(\.decodedSize) == [6, 4, 0, 1])
        #expect(r.attachments.map(\.contentID) == [nil, "logo@shop", nil, nil])
    }

    @Test(arguments: [
        (#"{"filename":"a.pdf","content":"data:application/pdf;base64,JVBERi0x"}"#, "attachments[0].content", "data: URL"),
        (#"{"filename":"a.pdf","content":"JVBERi0"}"#, "attachments[0].content", "not a multiple of 4"),
        (#"{"filename":"a.pdf","content":"JVB=Ri0x"}"#, "attachments[0].content", "padding"),
        (#"{"filename":"a.pdf","content":"JV-_Ri0x"}"#, "attachments[0].content", "base64url"),
        (#"{"filename":"a.pdf","content":"YR=="}"#, "attachments[0].content", "bits after the last byte"),
        (#"{"filename":"a.pdf","content":"YQ==="}"#, "attachments[0].content", "padding"),
        (#"{"filename":"a.pdf","content":"Zm9vé"}"#, "attachments[0].content", "U+E9"),
        (#"{"filename":"a.pdf","content":5}"#, "attachments[0].content", "must be a base64 string"),
        (#"{"filename":"a.pdf"}"#, "attachments[0].content", "is required"),
        (#"{"content":"YQ=="}"#, "attachments[0].filename", "is required"),
        (#"{"filename":"","content":"YQ=="}"#, "attachments[0].filename", "must not be empty"),
        (#"{"filename":"../etc/passwd","content":"YQ=="}"#, "attachments[0].filename", "without / or"),
        (#"{"filename":"a\\b.pdf","content":"YQ=="}"#, "attachments[0].filename", "without / or"),
        (#"{"filename":"a\r\nb.pdf","content":"YQ=="}"#, "attachments[0].filename", "control characters"),
        (#"{"filename":"setup.EXE","content":"YQ=="}"#, "attachments[0].filename", "executable type (.exe)"),
        (#"{"filename":"invoice.pdf.js","content":"YQ=="}"#, "attachments[0].filename", "executable type (.js)"),
        (#"{"filename":"a.pdf","content":"YQ==","content_type":"pdf"}"#, "attachments[0].content_type", "type/subtype"),
        (#"{"filename":"a.pdf","content":"YQ==","content_type":"text/plain; charset=utf-8"}"#, "attachments[0].content_type", "type/subtype"),
        (#"{"filename":"a.png","content":"YQ==","content_id":"has space"}"#, "attachments[0].content_id", "without spaces"),
        (#"{"filename":"a.png","content":"YQ==","content_id":"<x>"}"#, "attachments[0].content_id", "without spaces"),
        (#"{"filename":"a.pdf","content":"YQ==","inline":true}"#, "attachments[0].inline", "not a known field"),
        (#""a.pdf""#, "attachments[0]", "must be an object"),
    ])
    func badAttachments(item: String, field: String, mention: String) {
        let json = "{\(Self.base),\"attachments\":[\(item)]}"
        guard case .failure(let e) = SendAPI.validate(body(json)) else { Issue.record("accepted \(item)"); return }
        #expect(e.fields.map(\.0) == [field], "\(e.fields)")
        #expect(e.fields.first?.1.first?.contains(mention) == true, "\(e.fields)")
    }

    @Test func attachmentLimits() {
        // Over the decoded total: 4 + 4 bytes against a limit of 7.
        let two = #""attachments":[{"filename":"a.txt","content":"YWJjZA=="},{"filename":"b.txt","content":"YWJjZA=="}]"#
        guard case .failure(let e) = SendAPI.validate(body("{\(Self.base),\(two)}"), maxAttachmentBytes: 7) else { Issue.record("accepted"); return }
        #expect(e.fields.map(\.0) == ["attachments"])
        #expect(e.fields[0].1[0].contains("--max-attachment-bytes"))
        #expect((try? SendAPI.validate(body("{\(Self.base),\(two)}"), maxAttachmentBytes: 8).get()) != nil)
        // More than 50, a duplicate content_id, not an array.
        let many = (0...SendAPI.maxAttachments).map { _ in #"{"filename":"a.txt","content":"YQ=="}"# }.joined(separator: ",")
        guard case .failure(let m) = SendAPI.validate(body("{\(Self.base),\"attachments\":[\(many)]}")) else { Issue.record("accepted 51"); return }
        #expect(m.fields.map(\.0) == ["attachments"])
        let dup = #""attachments":[{"filename":"a.png","content":"YQ==","content_id":"x"},{"filename":"b.png","content":"YQ==","content_id":"x"}]"#
        guard case .failure(let d) = SendAPI.validate(body("{\(Self.base),\(dup)}")) else { Issue.record("accepted a duplicate content_id"); return }
        #expect(d.fields.map(\.0) == ["attachments[1].content_id"])
        guard case .failure(let n) = SendAPI.validate(body("{\(Self.base),\"attachments\":{}}")) else { Issue.record("accepted an object"); return }
        #expect(n.fields.map(\.0) == ["attachments"])
    }
}
