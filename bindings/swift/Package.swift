// swift-tools-version:5.9
// The FitKart Swift package: the generated Swift API (FitKart.swift) over the Rust library,
// shipped as FitKartFFI.xcframework. Build the framework first on a Mac:
//   bash bindings/swift/build-xcframework.sh
// then add this directory as a local package in Xcode (File > Add Package Dependencies).
import PackageDescription

let package = Package(
    name: "FitKart",
    platforms: [.iOS(.v15), .macOS(.v12)],
    products: [
        .library(name: "FitKart", targets: ["FitKart"]),
    ],
    targets: [
        .binaryTarget(name: "FitKartFFI", path: "FitKartFFI.xcframework"),
        .target(
            name: "FitKart",
            dependencies: ["FitKartFFI"],
            path: ".",
            exclude: ["build-xcframework.sh", "FitKartFFI.h", "FitKartFFI.modulemap", "README.md"],
            sources: ["FitKart.swift"]
        ),
    ]
)
