/// SMTPBench: drives our SMTP client (`SMTPClient.RelayPool` in one reactor, exactly as the
/// server does) against a relay with synthetic messages, and reports messages/s and the
/// client's CPU per message (getrusage of this process: the whole client, loop included).
/// Used by `Benchmarks/run-smtp` side by side with Postfix's smtp-source.
///
///   SMTPBench PORT SESSIONS MESSAGES PER_SESSION MESSAGE_FILE
/// PER_SESSION 0 = reuse sessions without limit; 1 = one message per session.
#if canImport(Glibc)
import Glibc
#endif
import Logging
import Reactor
import Resolver
import SMTPClient
import SMTPProtocol

final class Counter: DeliveryHandler {
    var sent = 0
    var other = 0
    var lastProblem = ""
    func delivered(_ job: DeliveryJob, _ outcome: DeliveryOutcome, recipients: [SMTPReply]?) {
        if case .sent = outcome { sent += 1 } else {
            other += 1
            lastProblem = "\(outcome)"
        }
    }
}

func cpuSeconds() -> Double {
    var u = rusage()
    getrusage(RUSAGE_SELF.rawValue, &u)
    let user = Double(u.ru_utime.tv_sec) + Double(u.ru_utime.tv_usec) / 1e6
    let system = Double(u.ru_stime.tv_sec) + Double(u.ru_stime.tv_usec) / 1e6
    return user + system
}

let args = CommandLine.arguments
guard args.count == 6, let port = UInt16(args[1]), let sessions = Int(args[2]), let total = Int(args[3]), let perSession = Int(args[4]),
      let f = fopen(args[5], "r") else {
    print("usage: SMTPBench PORT SESSIONS MESSAGES PER_SESSION MESSAGE_FILE")
    exit(2)
}
var message: [UInt8] = []
var buf = [UInt8](repeating: 0, count: 65536)
while case let n = fread(&buf, 1, buf.count, f), n > 0 { message += buf[0..<n] }
fclose(f)
// smtp-source sends the file with LF turned into CRLF; store it the same way.
var crlf: [UInt8] = []
for b in message {
    if b == 0x0A && crlf.last != 0x0D { crlf.append(0x0D) }
    crlf.append(b)
}

Reactor.ignoreSIGPIPE()
let reactor = try Reactor()
var logger = Logger(label: "smtp-bench")
logger.logLevel = .warning
let resolver = Resolver(reactor: reactor, configuration: ResolverConfiguration(nameServers: []))
let pool = RelayPool(name: "bench", endpoint: RelayEndpoint(host: "127.0.0.1", port: port,
                     policy: .init(security: .plain, credentials: nil, clientName: "bench.localhost"), timeoutSeconds: 30),
                     maxConnections: sessions, reactor: reactor, resolver: resolver, tlsContext: nil, logger: logger)
let counter = Counter()
pool.handler = counter
pool.maxMessagesPerSession = perSession
pool.idleSeconds = 1

let cpu0 = cpuSeconds()
let t0 = Instant.now()
for i in 0..<total {
    pool.enqueue(DeliveryJob(id: Int64(i), envelope: Envelope(from: "support@example.com", to: "alice.johnson@example.org", message: crlf)))
}
let deadline = t0 + .seconds(300)
while counter.sent + counter.other < total && Instant.now() < deadline {
    try reactor.runOnce(maxWait: .milliseconds(100))
}
let t1 = Instant.now()
let cpu1 = cpuSeconds()
let elapsed = t1 - t0
let secs = Double(elapsed.components.seconds) + Double(elapsed.components.attoseconds) / 1e18
let rate = Int(Double(counter.sent) / secs)
let cpuPerMessage = Int((cpu1 - cpu0) * 1e7 / Double(max(counter.sent, 1)))
print("RESULT sent=\(counter.sent) failed=\(counter.other) seconds=\(secs) msgs_per_s=\(rate) cpu_us_per_msg=\(Double(cpuPerMessage) / 10) sessions_opened=\(pool.sessionsOpened)")
if counter.other > 0 { print("last problem: \(counter.lastProblem)") }
