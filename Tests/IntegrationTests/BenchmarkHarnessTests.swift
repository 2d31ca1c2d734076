/// The benchmark harness itself (issue: the benchmark suite): `Benchmarks/run-e2e --smoke`
/// drives the real path — wrk over TLS, the server, SQLite, our SMTP client, Postfix's
/// smtp-sink — until the server has accepted 300 requests (a count, not a time: a busy machine
/// makes it slower, never different), and its report must parse and say accepted = delivered.
/// No timing is asserted.
import Foundation
import Testing

@Suite(.serialized) struct BenchmarkHarnessTests {
    @Test func theEndToEndHarnessRunsAndLosesNothing() throws {
        let dir = makeTempDir()
        let report = dir + "/e2e.md"
        let ports = try (0..<3).map { _ in try freeTCPPort() }
        let (rc, out) = try run(["env", "BIN=\(binaryPath())", "REPORT=\(report)", "PORT=\(ports[0])", "PORT_METRICS=\(ports[1])",
                                 "PORT_SINK=\(ports[2])", "DRAIN_SECONDS=60", repositoryRoot + "/Benchmarks/run-e2e", "--smoke"],
                                timeoutSeconds: 240)
        #expect(rc == 0, "\(out)")
        let summary = try #require(out.split(separator: "\n").last { $0.hasPrefix("E2E ") }, "\(out)")
        var values: [String: String] = [:]
        for field in summary.split(separator: " ").dropFirst() {
            let kv = field.split(separator: "=", maxSplits: 1)
            if kv.count == 2 { values[String(kv[0])] = String(kv[1]) }
        }
        let accepted = try #require(Int(values["accepted"] ?? ""))
        #expect(accepted >= 300, "the smoke run's 300 requests at least: \(accepted)")
        #expect(values["delivered"] == values["accepted"] && values["lost"] == "0" && values["drained"] == "yes")
        // The report is Markdown with the figures table and the queue timeline.
        let text = try String(contentsOfFile: report, encoding: .utf8)
        #expect(text.hasPrefix("# End to end: accepted and delivered (smoke)"))
        let rows = text.split(separator: "\n").filter { $0.hasPrefix("| ") }
        func figure(_ name: String) -> String? {
            rows.first { $0.hasPrefix("| \(name) |") }?.split(separator: "|").map { $0.trimmingCharacters(in: .whitespaces) }.last { !$0.isEmpty }
        }
        #expect(figure("accepted (server 200s)") == "\(accepted)")
        #expect(figure("delivered (smtp-sink's count)") == "\(accepted)")
        #expect(figure("lost (accepted − delivered)") == "0")
        #expect(text.contains("| s | accepted | sent | queue | sink |"))
    }

    /// `Benchmarks/run-instructions`: the server under callgrind answers the replay load, and
    /// the tool prints user-space instructions per answered request (no value asserted: a
    /// count, and that every answer was a 2xx).
    @Test func theInstructionCounterReportsAFigurePerRequest() throws {
        let ports = try (0..<2).map { _ in try freeTCPPort() }
        let (rc, out) = try run(["env", "BIN=\(binaryPath())", "DURATION=2", "PORT=\(ports[0])", "PORT_SINK=\(ports[1])",
                                 repositoryRoot + "/Benchmarks/run-instructions", "replay"], timeoutSeconds: 180)
        #expect(rc == 0, "\(out)")
        let line = try #require(out.split(separator: "\n").last { $0.hasPrefix("replay: ") }, "\(out)")
        let words = line.split(separator: " ")
        let answered = try #require(Int(words[1]))
        #expect(answered > 0)
        #expect(line.contains("(0 not 2xx)"), "\(line)")
        let perRequest = try #require(words.firstIndex(of: "user-space").flatMap { Int(words[$0 - 1]) }, "\(line)")
        #expect(perRequest > 1000, "a request is more than a thousand instructions: \(line)")
    }

    /// `Benchmarks/run --smoke`: the suite's own script runs its parts (here the keep-alive send
    /// case against nginx for a second, then end to end for 300 requests) and assembles one report whose
    /// headline rows carry numbers from both sides and say accepted = delivered.
    @Test func theSuiteAssemblesItsReport() throws {
        let dir = makeTempDir()
        let report = dir + "/suite.md"
        let ports = try (0..<7).map { _ in try freeTCPPort() }
        let (rc, out) = try run(["env", "BIN=\(binaryPath())", "SUITE_REPORT=\(report)", "PORT_SELF=\(ports[0])", "PORT_NGINX=\(ports[1])",
                                 "PORT_NGINX_RESUME=\(ports[2])", "PORT_SINK=\(ports[3])", "PORT=\(ports[4])", "PORT_METRICS=\(ports[5])",
                                 "E2E_PORT_SINK=\(ports[6])", "DRAIN_SECONDS=60", repositoryRoot + "/Benchmarks/run", "--smoke"],
                                timeoutSeconds: 400)
        #expect(rc == 0, "\(out)")
        let text = try String(contentsOfFile: report, encoding: .utf8)
        #expect(text.hasPrefix("# tickiti-mail benchmark report (smoke)"))
        #expect(text.contains("Reproduce: `Benchmarks/run --smoke`"))
        let rows = text.split(separator: "\n").filter { $0.hasPrefix("| ") }.map {
            $0.split(separator: "|", omittingEmptySubsequences: false).map { $0.trimmingCharacters(in: .whitespaces) }
        }
        // | case | figure | reference | tickiti-mail | ratio | target | verdict |
        let cpu = try #require(rows.first { $0.count > 6 && $0[1].hasPrefix("keep-alive POST /api/send_email") }, "\(text)")
        #expect(cpu[2] == "server CPU µs/req")
        #expect((Double(cpu[3]) ?? 0) > 0 && (Double(cpu[4]) ?? 0) > 0, "nginx's and ours: \(cpu)")
        #expect(cpu[5].hasSuffix("×") && Double(cpu[5].dropLast()) != nil)
        // The floor (Benchmarks/run-floor on a copy of the prefilled database): nginx's 200 + the
        // store's writes alone, against accepting alone; and bytes written per message.
        let floor = try #require(rows.first { $0.count > 6 && $0[1].hasPrefix("accepting alone") }, "\(text)")
        #expect((Double(floor[3]) ?? 0) > (Double(cpu[3]) ?? 0) && (Double(floor[4]) ?? 0) > 0, "the floor is above nginx's 200 alone: \(floor)")
        let bytes = try #require(rows.first { $0.count > 6 && $0[1].hasPrefix("bytes written per accepted message") }, "\(text)")
        #expect((Double(bytes[3]) ?? 0) > 500 && (Double(bytes[4]) ?? 0) > 0, "the message's size and ours: \(bytes)")
        #expect(text.contains("### The floor: the store's writes alone"))
        // | accepted | delivered | lost | …
        let e2e = try #require(rows.firstIndex { $0.count > 3 && $0[1] == "accepted" && $0[2] == "delivered" }, "\(text)")
        let values = rows[e2e + 1]   // the separator line is not a "| " row
        let accepted = try #require(Int(values[1]))
        #expect(accepted >= 300 && values[2] == values[1] && values[3] == "0", "\(values)")
        // The parts' own reports follow the headline.
        #expect(text.contains("## HTTPS: tickiti-mail vs nginx") && text.contains("## End to end: accepted and delivered (smoke)"))
    }
}
