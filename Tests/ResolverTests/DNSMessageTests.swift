import Testing
@testable import Resolver

/// Builds DNS responses by hand (what a server would send) for the decoder's table.
func response(id: UInt16, name: String, type: UInt16, rcode: UInt8 = 0, answers: [(owner: [UInt8], type: UInt16, ttl: UInt32, data: [UInt8])],
              flags: UInt8 = 0x81) -> [UInt8] {
    var m: [UInt8] = [UInt8(id >> 8), UInt8(id & 0xFF), flags, 0x80 | rcode, 0, 1, 0, UInt8(answers.count), 0, 0, 0, 0]
    for label in name.split(separator: ".") {
        m.append(UInt8(label.utf8.count))
        m += label.utf8
    }
    m += [0, UInt8(type >> 8), UInt8(type & 0xFF), 0, 1]
    for a in answers {
        m += a.owner
        m += [UInt8(a.type >> 8), UInt8(a.type & 0xFF), 0, 1]
        m += [UInt8(a.ttl >> 24), UInt8(a.ttl >> 16 & 0xFF), UInt8(a.ttl >> 8 & 0xFF), UInt8(a.ttl & 0xFF)]
        m += [UInt8(a.data.count >> 8), UInt8(a.data.count & 0xFF)]
        m += a.data
    }
    return m
}

/// A pointer to the question's name (offset 12).
let questionName: [UInt8] = [0xC0, 12]

func encodedName(_ n: String) -> [UInt8] {
    var m: [UInt8] = []
    for label in n.split(separator: ".") {
        m.append(UInt8(label.utf8.count))
        m += label.utf8
    }
    return m + [0]
}

struct DNSMessageTests {
    @Test func queryEncoding() {
        let q = DNSMessage.query(id: 0xBEEF, name: "relay.example.com.", type: .aaaa)
        #expect(q == [0xBE, 0xEF, 1, 0, 0, 1, 0, 0, 0, 0, 0, 0, 5] + Array("relay".utf8) + [7] + Array("example".utf8) + [3] + Array("com".utf8) + [0, 0, 28, 0, 1])
    }

    @Test func aRecordsWithCompressionAndMinimumTTL() throws {
        let m = response(id: 7, name: "relay.example", type: 1, answers: [
            (questionName, 1, 300, [192, 0, 2, 1]),
            (questionName, 1, 60, [192, 0, 2, 2]),
        ])
        #expect(try DNSMessage.parseResponse(m, id: 7, name: "Relay.Example", type: .a) == .answer(DNSAnswer(addresses: ["192.0.2.1", "192.0.2.2"], ttl: 60)))
    }

    @Test func cnameChainIsFollowedWithinTheAnswer() throws {
        let m = response(id: 1, name: "mail.example", type: 1, answers: [
            (questionName, 5, 100, encodedName("real.example")),
            (encodedName("real.example"), 1, 50, [10, 0, 0, 1]),
            (encodedName("unrelated.example"), 1, 50, [10, 0, 0, 9]),
        ])
        #expect(try DNSMessage.parseResponse(m, id: 1, name: "mail.example", type: .a) == .answer(DNSAnswer(addresses: ["10.0.0.1"], ttl: 50)))
    }

    @Test func aaaaText() throws {
        let m = response(id: 2, name: "v6.example", type: 28, answers: [
            (questionName, 28, 10, [0x20, 0x01, 0x0d, 0xb8, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 1]),
            (questionName, 28, 10, [0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 1]),
            (questionName, 28, 10, [0x20, 0x01, 0x0d, 0xb8, 0, 1, 0, 0, 0, 1, 0, 0, 0, 0, 0, 1]),
        ])
        #expect(try DNSMessage.parseResponse(m, id: 2, name: "v6.example", type: .aaaa) == .answer(DNSAnswer(addresses: ["2001:db8::1", "::1", "2001:db8:1:0:1::1"], ttl: 10)))
    }

    @Test func rcodes() throws {
        #expect(try DNSMessage.parseResponse(response(id: 3, name: "x.example", type: 1, rcode: 3, answers: []), id: 3, name: "x.example", type: .a) == .nameError)
        #expect(try DNSMessage.parseResponse(response(id: 3, name: "x.example", type: 1, rcode: 2, answers: []), id: 3, name: "x.example", type: .a) == .serverFailure(rcode: 2))
        #expect(try DNSMessage.parseResponse(response(id: 3, name: "x.example", type: 1, answers: []), id: 3, name: "x.example", type: .a) == .answer(DNSAnswer(addresses: [], ttl: 0)))
    }

    static let refused: [(String, [UInt8], String)] = [
        ("wrong ID", response(id: 9, name: "x.example", type: 1, answers: []), "wrong ID"),
        ("a query, not a response", response(id: 4, name: "x.example", type: 1, answers: [], flags: 0x01), "not a response"),
        ("another name", response(id: 4, name: "y.example", type: 1, answers: []), "another question"),
        ("another type", response(id: 4, name: "x.example", type: 28, answers: []), "another question"),
        ("short", [0, 4, 0x81], "shorter"),
        ("record past the end", Array(response(id: 4, name: "x.example", type: 1, answers: [(questionName, 1, 1, [1, 2, 3, 4])]).dropLast(2)), "past the end"),
        ("pointer loop", response(id: 4, name: "x.example", type: 1, answers: []).prefix(12) + [0xC0, 12, 0, 1, 0, 1], "loop"),
        ("forward pointer", response(id: 4, name: "x.example", type: 1, answers: []).prefix(12) + [0xC0, 20, 0, 1, 0, 1, 0, 0, 0], "loop"),
    ]

    @Test(arguments: refused)
    func refusesWhatIsNotOurAnswer(name: String, message: [UInt8], reason: String) {
        do {
            _ = try DNSMessage.parseResponse(message, id: 4, name: "x.example", type: .a)
            Issue.record("\(name): accepted")
        } catch {
            #expect(error.reason.contains(reason), "\(name): \(error.reason)")
        }
    }

    @Test(arguments: [("relay.example.com", true), ("a", true), ("_dmarc.x", true), ("bad name", false), ("", false), ("a..b", false),
                      (String(repeating: "a", count: 64) + ".com", false), ("ex\u{e4}mple.com", false), ("trailing.dot.", true)])
    func queryableNames(name: String, ok: Bool) {
        #expect(DNSMessage.isQueryableName(name) == ok)
    }

    @Test func hostsAndResolvConf() {
        let hosts = ResolverConfiguration.parseHosts("""
            127.0.0.1 localhost
            ::1 localhost ip6-localhost # comment
            # 10.0.0.1 commented
            192.0.2.5\tRelay.Example relay
            notanaddress foo
            """)
        #expect(hosts["localhost"] == ["127.0.0.1", "::1"])
        #expect(hosts["relay.example"] == ["192.0.2.5"] && hosts["relay"] == ["192.0.2.5"])
        #expect(hosts["10.0.0.1"] == nil && hosts["foo"] == nil)
        let conf = ResolverConfiguration.parseResolvConf("""
            # generated
            nameserver 127.0.0.53
            nameserver ::1
            search example.com
            options edns0 timeout:1 attempts:3
            """)
        #expect(conf.servers == ["127.0.0.53", "::1"] && conf.timeout == 1 && conf.attempts == 3)
        #expect(ResolverConfiguration.parseResolvConf("options timeout:0 attempts:99").timeout == 1)
    }
}
