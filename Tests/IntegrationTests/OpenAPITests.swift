/// `GET /api/openapi.json` against the real binary over HTTPS: the document compiled into the
/// binary is served byte for byte (JSON, OpenAPI 3.1, no authentication, cacheable); it lists
/// every route the router has — read from the server itself, the `/metrics` exposition, whose
/// latency histogram carries one `route` label per registered route — and nothing the router
/// lacks; `docs/API.md` names each of its operations; and schemathesis (PyPI; Tests/run installs
/// it) finds, for every operation, no 5xx and no status, media type or body the document does
/// not describe (Tests/Scripts/schemathesis_run.py, a bounded number of cases per operation).
import Foundation
import Testing

@Suite(.serialized) struct OpenAPITests {
    static let repository = URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent().deletingLastPathComponent()

    @Test func theDocumentDescribesEveryRouteAndEveryResponse() throws {
        let f = try SendFixture(extraArgs: ["--metrics-listen", "127.0.0.1:0"])
        let token = try f.cli(["token", "create", "--name", "schemathesis", "--ability", "send-email", "--ability", "audit-read"]).lastLine

        // Served without a token, as compiled in.
        let r = try f.get("/api/openapi.json", token: nil)
        #expect(r.status == 200)
        #expect(r.header("Content-Type") == "application/json")
        #expect(r.header("Cache-Control")?.contains("max-age=") == true)
        let source = try Data(contentsOf: Self.repository.appendingPathComponent("Sources/APIDocument/openapi.json"))
        #expect(Data(r.body) == source, "the served document is Sources/APIDocument/openapi.json")
        let doc = try #require(try JSONSerialization.jsonObject(with: Data(r.body)) as? [String: Any])
        #expect((doc["openapi"] as? String)?.hasPrefix("3.1.") == true, "\(doc["openapi"] ?? "no openapi field")")
        let paths = try #require(doc["paths"] as? [String: [String: Any]])

        // Every route of the router, and no path it lacks. A prefix route (`/api/audit/{id}`)
        // also serves the sub-resources documented under it (`…/raw`, `…/attachments/{n}`).
        let (rc, exposition) = try run(["curl", "-sS", "--fail", try f.metricsURL])
        #expect(rc == 0, "\(exposition)")
        let routes = Set(exposition.matches(of: try Regex(#"route="([^"]*)""#)).compactMap { $0.output[1].substring.map(String.init) })
            .subtracting(["unmatched"])
        #expect(routes.contains("/api/send_email") && routes.contains("/api/openapi.json"), "\(routes.sorted())")
        for route in routes.sorted() {
            #expect(paths[route] != nil, "the route \(route) is not in openapi.json")
        }
        let prefixes = routes.filter { $0.hasSuffix("{id}") }.map { String($0.dropLast("{id}".count)) }
        for path in paths.keys.sorted() {
            #expect(routes.contains(path) || prefixes.contains { path.hasPrefix($0) && path.count > $0.count },
                    "openapi.json documents \(path), which the router does not have")
        }

        // The reference beside the document names every operation.
        let reference = try String(contentsOf: Self.repository.appendingPathComponent("docs/API.md"), encoding: .utf8)
        for (path, operations) in paths {
            for method in operations.keys where ["get", "post", "put", "patch", "delete"].contains(method) {
                #expect(reference.contains("`\(method.uppercased()) \(path)`"), "docs/API.md does not mention `\(method.uppercased()) \(path)`")
            }
        }

        // Entries for the detail, raw and attachment operations to find (ids 1–3).
        #expect(try f.post(directBody).status == 200)
        #expect(try f.post(templateBody).status == 200)
        let withFiles = #"{"to_address":"c@example.org","cc":"d@example.org","subject":"Files","content":"<p>x <img src=\"cid:logo\"></p>","#
            + #""attachments":[{"filename":"logo.png","content":"iVBORw0KGgo=","content_id":"logo"},{"filename":"a.pdf","content":"JVBERi0xLjQK"}],"#
            + #""metadata":{"order":"SP-1"}}"#
        #expect(try f.post(withFiles).status == 200)

        // schemathesis: examples, coverage and fuzzing phases, at most 20 cases per operation.
        let (status, output) = try run(["python3", scriptsDirectory + "/schemathesis_run.py", "--url", "https://127.0.0.1:\(f.port)",
                                        "--ca-file", f.cert.cert, "--token", token, "--max-examples", "20"],
                                       timeoutSeconds: 180)
        #expect(status == 0, "schemathesis found responses openapi.json does not describe (or could not run: Tests/run installs it):\n\(output)")
        let tail = f.server.stderrLines.filter { $0.contains(" error ") }
        #expect(tail.isEmpty, "the server logged errors while schemathesis ran:\n\(tail.joined(separator: "\n"))")
    }
}
