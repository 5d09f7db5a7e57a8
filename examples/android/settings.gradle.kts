// famq Android example: a Kotlin app that verifies a bundle, finalizes a
// model on the phone and generates with it through libfamq_runtime.so.
// NOT BUILDABLE in famq's CI (no Android SDK/NDK there): see README.md.
pluginManagement {
    repositories {
        google()
        mavenCentral()
        gradlePluginPortal()
    }
}
dependencyResolutionManagement {
    repositoriesMode.set(RepositoriesMode.FAIL_ON_PROJECT_REPOS)
    repositories {
        google()
        mavenCentral()
    }
}
rootProject.name = "famq-android"
include(":app")
