/// AuditPage: the `/audit` page's static files (HTML, CSS, JavaScript in `Static/`), compiled
/// into the binary with SwiftPM's `embedInCode` — no CDN, no build step, works offline.
///
/// Owns the files and the headers they are served with. The page's policy: scripts only from
/// this server (`script-src 'self'`, no inline script, no eval), requests only to this server,
/// no framing of the page (`frame-ancestors 'none'` + `X-Frame-Options: DENY`), no sniffing.
/// `style-src` allows inline styles and `img-src` data: URIs because the email's HTML, shown in
/// a sandboxed `srcdoc` frame, inherits this policy and commonly carries both; its scripts can
/// never run (the frame's sandbox has no `allow-scripts`) and remote images never load.
public enum AuditPage {
    public struct File: Sendable {
        public var contentType: String
        public var bytes: [UInt8]
    }

    /// Served paths → files.
    public static let files: [String: File] = [
        "/audit": File(contentType: "text/html; charset=utf-8", bytes: PackageResources.index_html),
        "/audit/": File(contentType: "text/html; charset=utf-8", bytes: PackageResources.index_html),
        "/audit/audit.js": File(contentType: "text/javascript; charset=utf-8", bytes: PackageResources.audit_js),
        "/audit/audit.css": File(contentType: "text/css; charset=utf-8", bytes: PackageResources.audit_css),
    ]

    public static let contentSecurityPolicy =
        "default-src 'none'; script-src 'self'; style-src 'self' 'unsafe-inline'; img-src 'self' data:; connect-src 'self'; "
        + "frame-src 'self'; base-uri 'none'; form-action 'none'; frame-ancestors 'none'"

    /// Headers for every file of the page.
    public static let securityHeaders: [(String, String)] = [
        ("Content-Security-Policy", contentSecurityPolicy),
        ("X-Content-Type-Options", "nosniff"),
        ("X-Frame-Options", "DENY"),
        ("Referrer-Policy", "no-referrer"),
        ("Cache-Control", "no-cache"),
    ]
}
