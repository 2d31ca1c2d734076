// swift-tools-version:6.1
//
// Micro benchmarks of tickiti-mail's stages with package-benchmark (ordo-one/benchmark): its
// own package so the main build stays light (STYLE habit 19). Time and allocations per
// operation, with baselines checked in (.benchmarkBaselines/) so a regression shows:
//   cd Benchmarks/Micro && swift package benchmark --no-progress
//   swift package benchmark baseline compare main --no-progress      # against the checked-in baseline
import PackageDescription

let package = Package(
    name: "tickiti-micro",
    platforms: [.macOS(.v14)],
    dependencies: [
        // The MallocInterposer trait keeps malloc counting and drops the default
        // RuntimeInterposer trait (its package is not in the local mirror; see the toolchain notes).
        .package(url: "https://github.com/ordo-one/benchmark", from: "1.38.1", traits: ["MallocInterposer"]),
        .package(name: "tickiti-mail", path: "../.."),
    ],
    targets: [
        .executableTarget(
            name: "Stages",
            dependencies: [
                .product(name: "Benchmark", package: "benchmark"),
                .product(name: "TickitiMailCore", package: "tickiti-mail"),
            ],
            path: "Benchmarks/Stages",
            plugins: [.plugin(name: "BenchmarkPlugin", package: "benchmark")]
        ),
        .executableTarget(
            name: "AuditQueries",
            dependencies: [
                .product(name: "Benchmark", package: "benchmark"),
                .product(name: "TickitiMailCore", package: "tickiti-mail"),
            ],
            path: "Benchmarks/AuditQueries",
            plugins: [.plugin(name: "BenchmarkPlugin", package: "benchmark")]
        ),
    ]
)
