/// APIDocument: the OpenAPI 3.1 document of the whole HTTP API (`openapi.json` beside this
/// file), compiled into the binary with SwiftPM's `embedInCode` and served at
/// `GET /api/openapi.json`.
///
/// Owns the bytes only: no parsing, no I/O. The document is written by hand against the code
/// (routes in `App/Application.swift` and `App/Router.swift`, fields and errors in `SendAPI`,
/// query parameters in `AuditAPI`); `docs/API.md` is its human reference, and
/// `Tests/IntegrationTests/OpenAPITests.swift` checks it against the running server
/// (every route listed, schemathesis finding no response the document does not describe).
public enum APIDocument {
    /// `openapi.json`, byte for byte.
    public static let json: [UInt8] = PackageResources.openapi_json
}
