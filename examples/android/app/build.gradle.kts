plugins {
    id("com.android.application")
    id("org.jetbrains.kotlin.android")
}

android {
    namespace = "org.famq"
    compileSdk = 34
    // Any NDK r23 or newer; pinned so that builds are reproducible.
    ndkVersion = "26.3.11579264"

    defaultConfig {
        applicationId = "org.famq.demo"
        minSdk = 26
        targetSdk = 34
        versionCode = 1
        versionName = "0.1.0"
        ndk {
            // famq's NEON / dotprod kernels: 64-bit ARM only.
            abiFilters += "arm64-v8a"
        }
        externalNativeBuild {
            cmake {
                // The same settings as toolchains/android-arm64.cmake: device-only
                // runtime, no tests. libfamq_runtime.so and libfamq_jni.so share
                // one C++ runtime (libc++_shared.so, packaged by Gradle).
                arguments += listOf(
                    "-DANDROID_STL=c++_shared",
                    "-DFAMQ_DEVICE_ONLY=ON",
                    "-DFAMQ_BUILD_TESTS=OFF",
                    "-DFAMQ_SYSROOT=" + (project.findProperty("famq.sysroot") ?: ""),
                )
                targets += listOf("famq_runtime_shared", "famq_jni")
            }
        }
    }

    externalNativeBuild {
        cmake {
            // Builds famq from this repository (../../..) with the NDK.
            path = file("src/main/cpp/CMakeLists.txt")
            // famq needs CMake >= 3.25 (sdkmanager "cmake;3.30.5", or cmake.dir
            // in local.properties pointing at a newer local CMake).
            version = "3.30.5"
        }
    }

    sourceSets {
        getByName("main") {
            java.srcDirs("src/main/kotlin")
        }
    }

    buildTypes {
        release {
            isMinifyEnabled = false
        }
    }

    compileOptions {
        sourceCompatibility = JavaVersion.VERSION_17
        targetCompatibility = JavaVersion.VERSION_17
    }
    kotlinOptions {
        jvmTarget = "17"
    }
}

dependencies {
    // FamqChat.sendMessage returns a kotlinx.coroutines Flow.
    implementation("org.jetbrains.kotlinx:kotlinx-coroutines-android:1.8.1")
}
