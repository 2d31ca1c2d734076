// swift-tools-version:6.0
//
// tickiti-mail: one process, one thread, one epoll reactor. See README.md and
// ../shared/SPEC.md §2. Dependencies point downward only:
//   CLI → App → drivers (HTTPServer) → engines (Reactor, TLS) → C libraries;
// pure modules (HTTP1, …) import nothing but the standard library.
import PackageDescription

let package = Package(
    name: "tickiti-mail",
    platforms: [.macOS(.v14)],
    products: [
        .executable(name: "tickiti-mail", targets: ["CLI"]),
        // For Benchmarks/Micro (its own package, so package-benchmark stays out of the main build).
        .library(name: "TickitiMailCore", targets: [
            "HTTP1", "JSON", "SendAPI", "Idempotency", "Auth", "Digest", "Templates", "MIME", "SMTPProtocol", "Store", "AuditAPI",
        ]),
    ],
    dependencies: [
        .package(url: "https://github.com/apple/swift-argument-parser", from: "1.8.2"),
        .package(url: "https://github.com/apple/swift-log", from: "1.16.2"),
        .package(url: "https://github.com/apple/swift-collections", from: "1.6.0"),
        .package(url: "https://github.com/hummingbird-project/swift-mustache", from: "2.1.1"),
        .package(url: "https://github.com/swift-server/swift-prometheus", from: "2.4.1"),
    ],
    targets: [
        // C libraries and shims
        .target(name: "CShims", path: "Sources/CShims"),
        .systemLibrary(name: "CSQLite", path: "Sources/CSQLite",
                       pkgConfig: "sqlite3", providers: [.apt(["libsqlite3-dev"])]),
        .target(name: "CSQLitePageCache", dependencies: ["CSQLite"]),
        .systemLibrary(name: "COpenSSL", path: "Sources/COpenSSL",
                       pkgConfig: "openssl", providers: [.apt(["libssl-dev"])]),
        .systemLibrary(name: "CLibPQ", path: "Sources/CLibPQ",
                       pkgConfig: "libpq", providers: [.apt(["libpq-dev"])]),

        // Pure modules (Digest is computation only, over OpenSSL's EVP)
        .target(name: "HTTP1"),
        .target(name: "Digest", dependencies: ["COpenSSL"]),
        .target(name: "Auth", dependencies: ["Digest"]),
        .target(name: "Relay"),
        .target(name: "JSON"),
        .target(name: "MIME", dependencies: ["HTTP1"]),   // IMFDate: RFC 5322 dates
        .target(name: "SendAPI", dependencies: ["HTTP1", "JSON", "MIME"]),
        .target(name: "Idempotency", dependencies: ["Digest", "JSON"]),
        .target(name: "Templates", dependencies: ["JSON", .product(name: "Mustache", package: "swift-mustache")]),
        .target(name: "SMTPProtocol", dependencies: ["MIME"]),
        .target(name: "AuditAPI"),
        .target(name: "AuditPage", resources: [
            .embedInCode("Static/index.html"), .embedInCode("Static/audit.js"), .embedInCode("Static/audit.css"),
        ]),
        // The OpenAPI 3.1 document of the HTTP API, served at GET /api/openapi.json
        .target(name: "APIDocument", resources: [.embedInCode("openapi.json")]),

        // Engines
        .target(name: "Reactor", dependencies: [
            "CShims",
            .product(name: "HeapModule", package: "swift-collections"),
        ]),
        .target(name: "TLS", dependencies: ["COpenSSL"]),
        // The store: its protocols and records, and the SQLite store (Store/SQLite)
        .target(name: "Store", dependencies: [
            "CSQLite", "CSQLitePageCache", "Auth", "Idempotency", "AuditAPI", "Reactor",
            .product(name: "Logging", package: "swift-log"),
        ]),
        .target(name: "Resolver", dependencies: ["Reactor"]),
        // libpq in the reactor: the PostgreSQL store's connection (SPEC §7)
        .target(name: "PostgresClient", dependencies: [
            "CLibPQ", "Reactor", "Resolver",
            .product(name: "Logging", package: "swift-log"),
        ]),

        // The PostgreSQL store (SPEC §7), beside Store/SQLite: the server's over PostgresClient,
        // the admin commands' over blocking libpq.
        .target(name: "PostgresStore", dependencies: [
            "Store", "PostgresClient", "CLibPQ", "Auth", "Idempotency", "AuditAPI", "Reactor", "Resolver",
            .product(name: "Logging", package: "swift-log"),
        ]),

        // Drivers
        .target(name: "HTTPServer", dependencies: [
            "Reactor", "TLS", "HTTP1", "CShims",
            .product(name: "Logging", package: "swift-log"),
        ]),

        .target(name: "SMTPClient", dependencies: [
            "Reactor", "TLS", "Resolver", "SMTPProtocol",
            .product(name: "DequeModule", package: "swift-collections"),
            .product(name: "Logging", package: "swift-log"),
        ]),

        // Composition and command line
        .target(name: "App", dependencies: [
            "HTTPServer", "Reactor", "TLS", "HTTP1", "Store", "PostgresStore", "Auth", "Digest", "SendAPI", "Idempotency",
            "JSON", "MIME", "Templates", "Relay", "SMTPProtocol", "SMTPClient", "Resolver", "AuditAPI", "AuditPage", "APIDocument", "CShims",
            .product(name: "Logging", package: "swift-log"),
            .product(name: "Prometheus", package: "swift-prometheus"),
        ]),
        // `serve --workers N`: the parent process that starts, restarts and signals the workers
        .target(name: "Workers", dependencies: [
            "Reactor",
            .product(name: "Logging", package: "swift-log"),
        ]),
        .executableTarget(name: "CLI", dependencies: [
            "App", "Store", "PostgresStore", "Auth", "Relay", "Templates", "JSON", "Workers", "CShims",
            .product(name: "ArgumentParser", package: "swift-argument-parser"),
            .product(name: "Logging", package: "swift-log"),
        ]),

        // libFuzzer targets (Tests/Scripts/fuzz TARGET SECONDS)
        .executableTarget(name: "FuzzHTTP1", dependencies: ["HTTP1"]),
        .executableTarget(name: "FuzzSendAPI", dependencies: ["SendAPI", "JSON", "MIME"]),
        .executableTarget(name: "FuzzSMTPReply", dependencies: ["SMTPProtocol", "MIME"]),
        .executableTarget(name: "FuzzAudit", dependencies: ["AuditAPI", "MIME"]),

        // Benchmark drivers (Benchmarks/run-smtp)
        .executableTarget(name: "SMTPBench", dependencies: [
            "SMTPClient", "SMTPProtocol", "Reactor", "Resolver",
            .product(name: "Logging", package: "swift-log"),
        ], path: "Benchmarks/SMTPBench"),

        // Tests
        .testTarget(name: "HTTP1Tests", dependencies: ["HTTP1"]),
        .testTarget(name: "AuthTests", dependencies: ["Auth", "Digest"]),
        .testTarget(name: "JSONTests", dependencies: ["JSON"]),
        .testTarget(name: "TemplatesTests", dependencies: ["Templates", "JSON"]),
        .testTarget(name: "MIMETests", dependencies: ["MIME"]),
        .testTarget(name: "AuditAPITests", dependencies: ["AuditAPI"]),
        .testTarget(name: "SendAPITests", dependencies: ["SendAPI", "Idempotency", "JSON"]),
        .testTarget(name: "RelayTests", dependencies: ["Relay"]),
        .testTarget(name: "SMTPProtocolTests", dependencies: ["SMTPProtocol", "MIME"]),
        .testTarget(name: "ResolverTests", dependencies: ["Resolver", "Reactor"]),
        .testTarget(name: "StoreTests", dependencies: ["Store", "Auth", "AuditAPI"]),
        .testTarget(name: "TLSTests", dependencies: ["TLS", "COpenSSL"]),
        .testTarget(name: "ReactorTests", dependencies: ["Reactor", "CShims"]),
        .testTarget(name: "PostgresClientTests", dependencies: [
            "PostgresClient", "Reactor", "Resolver", "CLibPQ",
            .product(name: "Logging", package: "swift-log"),
        ]),
        .testTarget(name: "IntegrationTests", dependencies: [
            "App", "HTTPServer", "Reactor", "TLS", "HTTP1", "COpenSSL", "CShims", "SMTPClient", "SMTPProtocol", "Resolver", "Store", "PostgresStore", "PostgresClient",
            .product(name: "Logging", package: "swift-log"),
        ]),
    ]
)
