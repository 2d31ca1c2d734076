/// HTTPResponse serialization, IMF dates and reason phrases, byte for byte.
import Testing
@testable import HTTP1

@Suite struct HTTPResponseTests {
    @Test func serializesWithFramingHeaders() {
        let r = HTTPResponse(status: 200, headers: HTTPHeaders([(name: "Content-Type", value: "application/json")]),
                             body: Array("{\"ok\":true}".utf8))
        var out: [UInt8] = []
        r.serialize(into: &out, date: "Sun, 06 Nov 1994 08:49:37 GMT", keepAlive: true)
        #expect(String(decoding: out, as: UTF8.self) ==
            "HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nContent-Length: 11\r\nDate: Sun, 06 Nov 1994 08:49:37 GMT\r\n\r\n{\"ok\":true}")
    }

    @Test func closeAndHTTP10KeepAlive() {
        var out: [UInt8] = []
        HTTPResponse(status: 413).serialize(into: &out, date: "D", keepAlive: false)
        #expect(String(decoding: out, as: UTF8.self) == "HTTP/1.1 413 Content Too Large\r\nContent-Length: 0\r\nDate: D\r\nConnection: close\r\n\r\n")
        out = []
        HTTPResponse(status: 204).serialize(into: &out, date: "D", keepAlive: true, version: .http1_0)
        #expect(String(decoding: out, as: UTF8.self) == "HTTP/1.1 204 No Content\r\nContent-Length: 0\r\nDate: D\r\nConnection: keep-alive\r\n\r\n")
    }

    @Test(arguments: [
        (784_111_777, "Sun, 06 Nov 1994 08:49:37 GMT"),
        (0, "Thu, 01 Jan 1970 00:00:00 GMT"),
        (951_782_400, "Tue, 29 Feb 2000 00:00:00 GMT"),
        (1_709_164_799, "Wed, 28 Feb 2024 23:59:59 GMT"),
        (1_709_251_199, "Thu, 29 Feb 2024 23:59:59 GMT"),
        (4_102_444_800, "Fri, 01 Jan 2100 00:00:00 GMT"),
        (-1, "Wed, 31 Dec 1969 23:59:59 GMT"),
        (1_795_815_126, "Fri, 27 Nov 2026 21:32:06 GMT"),
        (253_402_300_799, "Fri, 31 Dec 9999 23:59:59 GMT"),
        (-62_135_596_800, "Mon, 01 Jan 0001 00:00:00 GMT"),   // always four year digits (RFC 5322 §3.3)
    ])
    func imfDates(seconds: Int, expected: String) {
        #expect(IMFDate.format(epochSeconds: seconds) == expected)
        var bytes = Array("Date: ".utf8)
        IMFDate.append(epochSeconds: seconds, zone: "+0000", to: &bytes)
        #expect(String(decoding: bytes, as: UTF8.self) == "Date: " + expected.dropLast(3) + "+0000")
    }

    @Test(arguments: [(200, "OK"), (404, "Not Found"), (405, "Method Not Allowed"), (431, "Request Header Fields Too Large"),
                      (505, "HTTP Version Not Supported"), (299, "Unknown")])
    func reasonPhrases(status: Int, phrase: String) {
        #expect(reasonPhrase(status) == phrase)
    }

    @Test(arguments: [0, 7, 10, 99, 100, 12345, 10_485_760])
    func decimal(_ v: Int) {
        var out: [UInt8] = []
        appendDecimal(v, &out)
        #expect(String(decoding: out, as: UTF8.self) == String(v))
    }

    @Test func continueBytes() {
        #expect(continueResponse == Array("HTTP/1.1 100 Continue\r\n\r\n".utf8))
    }
}
