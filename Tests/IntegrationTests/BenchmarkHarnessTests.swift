/// The benchmark harness itself (issue: the benchmark suite): `Benchmarks/run-e2e --smoke`
/// drives the real path — wrk over TLS, the server, SQLite, our SMTP client, Postfix's
/// smtp-sink — for two seconds, and its report must parse and say accepted = delivered.
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
        #expect(accepted >= 100, "a few hundred requests at least: \(accepted)")
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
}
