// famq keygen --out KEY.pem --pub PUB.pem
// famq verify BUNDLE --trust PUB.pem [--allow-unsigned]
// famq inspect BUNDLE [--trust PUB.pem] [--json] [--no-tokens]
// Keys and bundle checks; the bundle is verified before anything is shown.
#include <sys/stat.h>

#include <cstdio>

#include "bundle/bundle.h"
#include "bundle/bundle_json.h"
#include "bundle/signing.h"
#include "core/file.h"
#include "tools/famq/commands.h"

namespace famq::host_cli {
namespace {

struct KeygenArgs {
  std::string out, pub;
  bool force = false;
};

int RunKeygen(const KeygenArgs& a) {
  if (!a.force && (FileExists(a.out) || FileExists(a.pub))) {
    return Fail(InvalidArgument((FileExists(a.out) ? a.out : a.pub) + " exists; refusing to overwrite a key "
                                "(pass --force to replace it)"));
  }
  auto keys = GenerateKeyPair();
  if (!keys.ok()) return Fail(keys.status());
  Status s = WriteKeyPair(*keys, a.out, a.pub);
  if (!s.ok()) return Fail(s);
  std::printf("wrote %s (private, mode 0600) and %s\nkey id %s\n", a.out.c_str(), a.pub.c_str(),
              keys->key_id.c_str());
  return 0;
}

// The --trust key, if given (nullopt when `path` is empty).
Result<std::optional<PublicKey>> LoadTrust(const std::string& path) {
  if (path.empty()) return std::optional<PublicKey>();
  auto k = PublicKey::Load(path);
  if (!k.ok()) return k.status();
  return std::optional<PublicKey>(std::move(*k));
}

struct VerifyArgs {
  std::string bundle, trust;
  bool allow_unsigned = false;
};

std::string ModelName(const fb::ModelId* m) { return m && m->name() ? m->name()->str() : "?"; }

int RunVerify(const VerifyArgs& a) {
  if (a.trust.empty() && !a.allow_unsigned) {
    return Fail(InvalidArgument("give the signer's public key with --trust PUB.pem"));
  }
  auto key = LoadTrust(a.trust);
  if (!key.ok()) return Fail(key.status());
  BundleVerifyOptions o;
  o.trusted_key = *key ? &**key : nullptr;
  o.allow_unsigned = a.allow_unsigned;
  auto b = Bundle::Open(a.bundle, o);
  if (!b.ok()) return Fail(b.status());
  const auto& v = b->verification();
  const fb::Payload& p = b->payload();
  std::printf("%s: OK, %s\n", a.bundle.c_str(),
              v.signature_checked ? ("signed by trusted key " + v.key_id.substr(0, 16) + "...").c_str()
              : v.is_signed       ? "signed (signature not checked)"
                                  : "UNSIGNED (accepted with --allow-unsigned)");
  std::printf("  payload SHA-256 %s\n", v.payload_sha256.c_str());
  std::printf("  family: tokenizer %s..., target %s, regenerator %s, expert %s\n",
              p.family()->tokenizer_sha256()->str().substr(0, 16).c_str(), ModelName(p.family()->target()).c_str(),
              ModelName(p.family()->regenerator()).c_str(), ModelName(p.family()->expert()).c_str());
  std::printf("  %u samples (%u regenerated, from %u originals; %u candidates), %llu tokens\n",
              p.samples()->size(), p.num_kept(), p.num_originals(), p.num_candidates(),
              static_cast<unsigned long long>(p.total_tokens()));
  return 0;
}

struct InspectArgs {
  std::string bundle, trust;
  bool json = false, no_tokens = false;
};

int RunInspect(const InspectArgs& a) {
  auto key = LoadTrust(a.trust);
  if (!key.ok()) return Fail(key.status());
  BundleVerifyOptions o;
  if (*key) {
    o.trusted_key = &**key;
  } else {
    o.check_signature = false;  // inspection of an untrusted bundle: structure is still verified
    o.allow_unsigned = true;
  }
  auto b = Bundle::Open(a.bundle, o);
  if (!b.ok()) return Fail(b.status());
  auto j = BundleToJson(*b, !a.no_tokens);
  if (a.json) {
    std::printf("%s\n", j.dump(-1, ' ', false, nlohmann::ordered_json::error_handler_t::replace).c_str());
    return 0;
  }
  const auto& v = j["verification"];
  std::printf("bundle %s (%s bytes)\n", a.bundle.c_str(), v["file_bytes"].dump().c_str());
  std::printf("  signature  %s\n", !v["signed"].get<bool>()           ? "none (unsigned)"
                                   : v["signature_checked"].get<bool>() ? "valid, trusted key"
                                                                         : "present, not checked (no --trust)");
  std::printf("  key id     %s\n", TerminalSafe(v["key_id"].get<std::string>(), 200).c_str());
  std::printf("  family     tokenizer %s\n", j["family"]["tokenizer_sha256"].get<std::string>().c_str());
  for (const char* role : {"target", "regenerator", "expert"}) {
    const auto& m = j["family"][role];
    if (m.is_null()) continue;
    std::printf("  %-10s %s (%s parameters, config %s)\n", role, TerminalSafe(m["name"].get<std::string>(), 200).c_str(),
                m["parameters"].dump().c_str(), m["config_sha256"].get<std::string>().substr(0, 16).c_str());
  }
  std::printf("  recipe     %s\n", j["recipe"].dump().c_str());
  std::printf("  provenance %s\n", j["provenance"].dump().c_str());
  std::printf("  counts     %s\n", j["counts"].dump().c_str());
  std::printf("  %5s %4s %-11s %8s %8s %6s  %s\n", "group", "cand", "kind", "weight", "score", "tokens", "text");
  for (const auto& s : j["samples"]) {
    // Sample text comes from the bundle: never let it reach the terminal raw.
    const std::string text = TerminalSafe(s["text"].get<std::string>(), 57);
    std::printf("  %5s %4s %-11s %8.5f %8s %6s  %s\n", s["group"].dump().c_str(), s["candidate"].dump().c_str(),
                TerminalSafe(s["kind"].get<std::string>(), 11).c_str(), s["weight"].get<double>(),
                s["score"].is_null() ? "-" : std::to_string(s["score"].get<double>()).substr(0, 8).c_str(),
                s["num_tokens"].dump().c_str(), text.c_str());
  }
  return 0;
}

}  // namespace

void RegisterBundleTools(CLI::App& app, ExitCode* exit_code) {
  auto k = std::make_shared<KeygenArgs>();
  CLI::App* kg = app.add_subcommand("keygen", "Create an ECDSA P-256 key pair for signing bundles");
  kg->add_option("--out", k->out, "Private key (PEM, written with mode 0600)")->required();
  kg->add_option("--pub", k->pub, "Public key (PEM), for the device's --trust")->required();
  kg->add_flag("--force", k->force, "Replace existing key files");
  kg->callback([k, exit_code] { exit_code->value = RunKeygen(*k); });

  auto v = std::make_shared<VerifyArgs>();
  CLI::App* vc = app.add_subcommand("verify", "Verify a bundle: container, signature, payload");
  vc->add_option("bundle", v->bundle, "Bundle file")->required();
  vc->add_option("--trust", v->trust, "The signer's public key (PEM)");
  vc->add_flag("--allow-unsigned", v->allow_unsigned, "Accept a bundle without a signature");
  vc->callback([v, exit_code] { exit_code->value = RunVerify(*v); });

  auto i = std::make_shared<InspectArgs>();
  CLI::App* ic = app.add_subcommand("inspect", "Show a bundle's family, recipe, provenance and samples");
  ic->add_option("bundle", i->bundle, "Bundle file")->required();
  ic->add_option("--trust", i->trust, "Check the signature against this public key (PEM)");
  ic->add_flag("--json", i->json, "Print one JSON object (top-level \"samples\" array)");
  ic->add_flag("--no-tokens", i->no_tokens, "Leave token ids and masks out of the JSON");
  ic->callback([i, exit_code] { exit_code->value = RunInspect(*i); });
}

}  // namespace famq::host_cli
