/// `GET /audit`: the page's files and their security headers, and the page itself driven in
/// a real browser (Debian's chromium through chromedriver and selenium, started by
/// Tests/Scripts/browser_audit.py): token prompt, list, search, detail, hostile HTML that
/// runs nothing, a wrong and a revoked token. Screenshots land in .build/test-artifacts/.
import Foundation
import Testing

let repositoryRoot = URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent().deletingLastPathComponent().path

@Suite(.serialized) struct AuditPageTests {
    @Test func thePageAndItsFilesCarryTheSecurityHeaders() throws {
        let f = try SendFixture()
        for (path, type) in [("/audit", "text/html"), ("/audit/audit.js", "text/javascript"), ("/audit/audit.css", "text/css")] {
            let r = try f.get(path, token: nil)
            #expect(r.status == 200, "\(path)")
            #expect(r.header("Content-Type")?.hasPrefix(type) == true)
            #expect(r.header("X-Content-Type-Options") == "nosniff")
            #expect(r.header("X-Frame-Options") == "DENY")
            let csp = try #require(r.header("Content-Security-Policy"))
            #expect(csp.contains("script-src 'self';") && !csp.contains("unsafe-eval") && csp.contains("frame-ancestors 'none'"))
            #expect(!csp.components(separatedBy: "script-src")[1].components(separatedBy: ";")[0].contains("unsafe-inline"))
        }
        let html = try f.get("/audit", token: nil).text
        #expect(!html.contains("<script>") && html.contains("<script src=\"/audit/audit.js\" defer></script>"), "no inline script")
        #expect(!html.contains("http://") && !html.contains("https://"), "nothing from another origin")
        let js = try f.get("/audit/audit.js", token: nil).text
        #expect(!js.contains("innerHTML") && !js.contains("outerHTML") && !js.contains("insertAdjacentHTML") && !js.contains("document.write"))
        #expect(!js.contains("eval(") && !js.contains("new Function"))
    }

    @Test func inARealBrowser() throws {
        let f = try SendFixture()
        let evilSubject = #"<img src=x onerror="document.body.dataset.pwned=1">Weekly deals"#
        let evilHTML = """
            <h1 id="m">Evil newsletter</h1>
            <script>document.getElementById('m').textContent = 'SCRIPT RAN'; try { parent.document.body.dataset.pwned = '1'; parent.__pwned = 1 } catch (e) {}</script>
            <img src="x" onerror="document.body.append('HANDLER RAN'); parent.__pwned = 2">
            <p><a id="js" href="javascript:document.body.append('LINK RAN'); parent.__pwned = 3">Claim your prize</a></p>
            <form action="javascript:parent.__pwned = 4"><button>Go</button></form>
            """
        var sent = 0
        func send(_ to: String, _ subject: String, _ html: String) throws {
            let body = try JSONSerialization.data(withJSONObject: ["to_address": to, "subject": subject, "content": html])
            let r = try f.post(String(decoding: body, as: UTF8.self))
            guard r.status == 200 else { throw TestFailure("send: \(r.status) \(r.text)") }
            sent += 1
        }
        for i in 1...3 { try send("alice@example.org", "Order \(i) confirmed", "<p>Thanks for order <b>\(i)</b>.</p>") }
        for i in 1...2 { try send("Bob@Example.org", "Invoice \(i)", "<p>Invoice <i>\(i)</i> is attached.</p>") }
        try send("carol@example.org", evilSubject, evilHTML)
        for id in 1...sent { try f.waitFor(Int64(id), status: "sent") }

        let artifacts = repositoryRoot + "/.build/test-artifacts"
        try FileManager.default.createDirectory(atPath: artifacts, withIntermediateDirectories: true)
        for name in ["audit-list.png", "audit-detail.png", "audit-failure.png"] { try? FileManager.default.removeItem(atPath: artifacts + "/" + name) }
        let revoke = try JSONSerialization.data(withJSONObject: [binaryPath(), "token", "revoke", "--db", f.db, "auditor"])
        let (rc, out) = try run(["python3", scriptsDirectory + "/browser_audit.py", "--url", "https://127.0.0.1:\(f.port)",
                                 "--token", f.auditToken, "--evil-subject", evilSubject, "--recipient", "BOB@example.ORG",
                                 "--recipient-count", "2", "--total", "\(sent)", "--revoke", String(decoding: revoke, as: UTF8.self),
                                 "--artifacts", artifacts], timeoutSeconds: 180)
        #expect(rc == 0, "browser checks failed (Tests/run installs chromium, chromium-driver and selenium):\n\(out)")
        #expect(out.contains("BROWSER CHECKS PASSED"))
        for name in ["audit-list.png", "audit-detail.png"] {
            let size = (try? FileManager.default.attributesOfItem(atPath: artifacts + "/" + name)[.size] as? Int) ?? 0
            #expect(size > 10_000, "screenshot \(name)")
        }
    }
}
