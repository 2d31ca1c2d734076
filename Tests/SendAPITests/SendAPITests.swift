/// SendAPI validation and the idempotency decision, as tables.
import Idempotency
import JSON
import Testing
@testable import SendAPI

func body(_ s: String) -> JSONValue { try! JSONParser.parse(Array(s.utf8)) }

@Suite struct SendAPITests {
    @Test(arguments: [
        ("application/json", true), ("application/json; charset=utf-8", true), ("Application/JSON;charset=UTF-8", true),
        ("application/json ; charset=\"utf-8\"", true), (nil, false), ("text/plain", false), ("application/json; charset=latin1", false),
        ("application/jsonx", false), ("application/json; foo=bar", false), ("multipart/form-data", false),
    ] as [(String?, Bool)])
    func contentType(value: String?, ok: Bool) {
        #expect(SendAPI.contentTypeIsJSON(value) == ok)
    }

    @Test(arguments: [
        ("550e8400-e29b-41d4-a716-446655440000", true), ("k", true), (String(repeating: "a", count: 255), true),
        (nil, false), ("", false), (String(repeating: "a", count: 256), false), ("has space", false), ("tab\t", false), ("ключ", false),
    ] as [(String?, Bool)])
    func idempotencyKeys(key: String?, ok: Bool) {
        #expect((SendAPI.idempotencyKeyProblem(key) == nil) == ok)
    }

    @Test(arguments: ["", "[1]", "\"s\"", "42", "null", "{", "{\"a\":1,}"])
    func bodiesThatAreNotObjects(text: String) {
        guard case .failure(let e) = SendAPI.parseBody(Array(text.utf8)) else { Issue.record("accepted \(text)"); return }
        #expect(e.status == 422 && e.code == "validation_failed")
        #expect(e.fields.map(\.0) == ["body"])
    }

    @Test func seedExampleADirectContent() throws {
        let r = try SendAPI.validate(body(#"{"to_address":"customer@example.com","subject":"Your order #1042","content":"<p>Thanks!</p>","mailbox":"Sales","validate_address":true}"#)).get()
        #expect(r == SendRequest(toAddress: "customer@example.com", content: .direct(subject: "Your order #1042", html: "<p>Thanks!</p>"),
                                 mailbox: "Sales", validateAddress: true))
        #expect(!r.usesTemplate)
    }

    @Test func seedExampleBTemplate() throws {
        let r = try SendAPI.validate(body(#"{"to_address":"billing@acme.example","template_identifier":"invoice_delivery","data":{"invoice_number":"INV-2024-0042","amount":"1,250.00 EUR","due_date":"2024-12-31"}}"#)).get()
        #expect(r.usesTemplate)
        #expect(r.mailbox == nil && !r.validateAddress)
    }

    @Test(arguments: [
        (#"{}"#, ["to_address", "subject", "content"]),
        (#"{"to_address":"a@b.c"}"#, ["subject", "content"]),
        (#"{"to_address":"a@b.c","subject":"s"}"#, ["content"]),
        (#"{"to_address":"a@b.c","content":"c"}"#, ["subject"]),
        (#"{"to_address":"a@b.c","template_identifier":"t"}"#, ["data"]),
        (#"{"to_address":"a@b.c","data":{}}"#, ["template_identifier"]),
        (#"{"to_address":"a@b.c","subject":"s","content":"c","template_identifier":"t","data":{}}"#, ["template_identifier", "data"]),
        (#"{"to_address":5,"subject":"s","content":"c"}"#, ["to_address"]),
        (#"{"to_address":"a@b.c","subject":["s"],"content":true}"#, ["subject", "content"]),
        (#"{"to_address":"a@b.c","template_identifier":"t","data":[1]}"#, ["data"]),
        (#"{"to_address":"a@b.c","subject":"s\r\nBcc: x@y.z","content":"c"}"#, ["subject"]),
        (#"{"to_address":"a@b.c","subject":"","content":""}"#, ["subject", "content"]),
        (#"{"to_address":"a@b.c\r\nRCPT TO:<x@y.z>","subject":"s","content":"c"}"#, ["to_address"]),
        (#"{"to_address":"a@b.c, x@y.z","subject":"s","content":"c"}"#, ["to_address"]),
        (#"{"to_address":"a@localhost","subject":"s","content":"c","validate_address":true}"#, ["to_address"]),
        (#"{"to_address":"a@b.c","subject":"s","content":"c","validate_address":"yes"}"#, ["validate_address"]),
        (#"{"to_address":"a@b.c","subject":"s","content":"c","mailbox":""}"#, ["mailbox"]),
        (#"{"to_address":"","subject":"s","content":"c"}"#, ["to_address"]),
        // 255 octets: refused even without validate_address (it made a 100 014-octet To: line).
        ("{\"to_address\":\"\(String(repeating: "a", count: 243))@example.org\",\"subject\":\"s\",\"content\":\"c\"}", ["to_address"]),
        (#"{"to_address":"a@b.c","subject":"nul\u0000","content":"c"}"#, ["subject"]),
        (#"{"to_address":"a@b.c","subject":"esc\u001b[31m","content":"c"}"#, ["subject"]),
        (#"{"to_address":"a@b.c","subject":"del\u007f","content":"c"}"#, ["subject"]),
        (#"{"to_address":"a@b.c","subject":"c1\u0085","content":"c"}"#, ["subject"]),
        ("{\"to_address\":\"a@b.c\",\"subject\":\"\(String(repeating: "s", count: 999))\",\"content\":\"c\"}", ["subject"]),
    ])
    func invalidBodiesNameEachBadField(json: String, fields: [String]) {
        guard case .failure(let e) = SendAPI.validate(body(json)) else { Issue.record("accepted \(json)"); return }
        #expect(e.status == 422 && e.code == "validation_failed")
        #expect(e.fields.map(\.0) == fields, "\(e.fields)")
    }

    /// One rule for given and rendered subjects (SendEmailService applies it to the rendered).
    @Test(arguments: [
        ("Invoice 42", nil), ("tab\tis fine", nil), (String(repeating: "s", count: 998), nil), (String(repeating: "é", count: 499), nil),
        ("", "must not be empty"), ("a\nb", "must not contain line breaks"), ("a\u{0}b", "must not contain control characters"),
        ("\u{1B}[1m", "must not contain control characters"), (String(repeating: "é", count: 500), "must be at most 998 bytes"),
    ] as [(String, String?)])
    func subjectRules(subject: String, problem: String?) {
        #expect(SendAPI.subjectProblem(subject) == problem)
    }

    @Test func addressCheckedLooselyUnlessAsked() {
        #expect((try? SendAPI.validate(body(#"{"to_address":"a@localhost","subject":"s","content":"c"}"#)).get()) != nil)
    }

    @Test func errorBodiesHaveSpecShape() {
        let e = APIError.validation([("to_address", ["is required"]), ("data", ["must be an object", "x"])])
        #expect(e.jsonBody == #"{"ok":false,"error":{"code":"validation_failed","message":"The given data was invalid.","fields":{"to_address":["is required"],"data":["must be an object","x"]}}}"#)
        #expect(APIError.unauthenticated().response.headers["WWW-Authenticate"] == "Bearer")
        #expect(APIError.unauthenticated().jsonBody == #"{"ok":false,"error":{"code":"unauthenticated","message":"A valid bearer token is required."}}"#)
    }

    @Test(arguments: [
        (#"{"template_identifier":"t","data":{"a":1}}"#, nil),
        (#"{"template_identifier":"t"}"#, ["data"]),
        (#"{"data":{}}"#, ["template_identifier"]),
        (#"{"template_identifier":"","data":{}}"#, ["template_identifier"]),
        (#"{"template_identifier":5,"data":"x"}"#, ["template_identifier", "data"]),
        (#"{"template_identifier":"t","data":{},"to_address":"a@b.c","subject":"s"}"#, ["to_address", "subject"]),
    ] as [(String, [String]?)])
    func renderBodies(json: String, fields: [String]?) {
        switch SendAPI.validateRender(body(json)) {
        case .success: #expect(fields == nil, "accepted \(json)")
        case .failure(let e): #expect(e.fields.map(\.0).sorted() == (fields ?? []).sorted(), "\(e.fields)")
        }
    }

    @Test func fingerprintsDifferByEndpoint() {
        let b = body(#"{"template_identifier":"t","data":{}}"#)
        #expect(Idempotency.fingerprint(b, endpoint: "render_template") != Idempotency.fingerprint(b))
        #expect(Idempotency.fingerprint(b, endpoint: "render_template") == Idempotency.fingerprint(body(#"{ "data":{}, "template_identifier":"t" }"#), endpoint: "render_template"))
    }

    @Test func idempotencyDecisions() {
        let fp = Idempotency.fingerprint(body(#"{"b":1,"a":2}"#))
        #expect(fp == Idempotency.fingerprint(body(#"{ "a" : 2, "b" : 1 }"#)))
        let other = Idempotency.fingerprint(body(#"{"a":3,"b":1}"#))
        let rec = IdempotencyRecord(fingerprint: fp, status: 200, body: Array("{\"ok\":true}".utf8), createdAt: 1000)
        let day: Int64 = 86_400_000
        #expect(Idempotency.decide(stored: nil, inFlight: nil, fingerprint: fp, nowMilliseconds: 2000, retentionMilliseconds: day) == .proceed)
        #expect(Idempotency.decide(stored: rec, inFlight: nil, fingerprint: fp, nowMilliseconds: 2000, retentionMilliseconds: day)
                == .replay(status: 200, body: rec.body))
        #expect(Idempotency.decide(stored: rec, inFlight: nil, fingerprint: other, nowMilliseconds: 2000, retentionMilliseconds: day) == .conflict)
        #expect(Idempotency.decide(stored: nil, inFlight: fp, fingerprint: fp, nowMilliseconds: 2000, retentionMilliseconds: day) == .inUse)
        #expect(Idempotency.decide(stored: rec, inFlight: nil, fingerprint: other, nowMilliseconds: 1000 + day, retentionMilliseconds: day) == .proceed)
    }
}
