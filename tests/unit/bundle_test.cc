// Calibration bundles: serialization, signing and the device-side reader.
// Every byte of a small signed bundle is flipped and each flip must be
// refused; so must truncations, a wrong key, a missing signature, a foreign
// identifier and payloads that break the invariants.
#include <gtest/gtest.h>

#include <set>

#include "bundle/bundle.h"
#include "bundle/bundle_contents.h"
#include "bundle/bundle_json.h"
#include "bundle/signing.h"
#include "schema/bundle_payload_generated.h"

namespace famq {
namespace {

BundleContents SmallContents() {
  BundleContents c;
  c.family.tokenizer_sha256 = std::string(64, 'a');
  c.family.target = {"famq-tiny-s", std::string(64, 'b'), 1312768};
  c.family.regenerator = {"famq-tiny-l", std::string(64, 'c'), 7346176};
  c.family.expert = c.family.regenerator;
  c.recipe.seq_len = 6;
  c.recipe.reasoning_cue = "Let's think step by step.";
  c.provenance = {"famq test", 42, "engine", "engine", std::string(64, 'd'), "unit"};
  c.num_originals = 2;
  c.num_candidates = 8;
  const float w[3] = {0.25f, 0.25f, 0.5f};
  for (int i = 0; i < 3; ++i) {
    BundleSample s;
    s.tokens = {4096, 10 + i, 11, 12, 13, 14};
    s.token_mask = {0, 1, 1, 1, 1, 1};
    s.weight = w[i];
    s.group = i < 2 ? 0 : 1;
    s.regenerated = i != 1;
    if (s.regenerated) s.scores = ScoreTerms{-1.5f, 0.8f, 0.3f, 0.0f, -0.55f, 0.9f, 5, true};
    s.candidate = static_cast<uint32_t>(i);
    s.text = "sample " + std::to_string(i);
    c.samples.push_back(s);
  }
  return c;
}

struct Signed {
  std::vector<uint8_t> bytes;
  PublicKey pub;
};

Signed SignContents(const BundleContents& c, const KeyPairPem& keys) {
  auto payload = SerializeBundlePayload(c);
  EXPECT_TRUE(payload.ok()) << payload.status().ToString();
  auto priv = PrivateKey::Parse(keys.private_pem, "test key");
  EXPECT_TRUE(priv.ok()) << priv.status().ToString();
  auto sig = priv->Sign(Sha256(payload->data(), payload->size()));
  EXPECT_TRUE(sig.ok());
  auto pub = PublicKey::Parse(keys.public_pem, "test pub");
  EXPECT_TRUE(pub.ok());
  return {BuildBundleContainer(*payload, priv->key_id(), *sig), std::move(*pub)};
}

class BundleTest : public ::testing::Test {
 protected:
  static void SetUpTestSuite() {
    auto k = GenerateKeyPair();
    ASSERT_TRUE(k.ok()) << k.status().ToString();
    keys_ = new KeyPairPem(*k);
    auto k2 = GenerateKeyPair();
    ASSERT_TRUE(k2.ok());
    other_keys_ = new KeyPairPem(*k2);
  }
  static void TearDownTestSuite() {
    delete keys_;
    delete other_keys_;
  }
  static KeyPairPem* keys_;
  static KeyPairPem* other_keys_;
};
KeyPairPem* BundleTest::keys_ = nullptr;
KeyPairPem* BundleTest::other_keys_ = nullptr;

// Issue 15: famq inspect printed sample text raw, so a bundle could send
// terminal escape sequences (ESC [ ..., C1 CSI, BEL) to whoever inspects it.
TEST(TerminalSafe, EscapesControlCharactersAndBadUtf8) {
  EXPECT_EQ(TerminalSafe("plain h\xc3\xa9llo \xe4\xb8\xad", 100), "plain h\xc3\xa9llo \xe4\xb8\xad");
  EXPECT_EQ(TerminalSafe("a\x1b[31mred\x07", 100), "a\\x1b[31mred\\x07");
  EXPECT_EQ(TerminalSafe("line\nnext\ttab\r", 100), "line next tab ");
  EXPECT_EQ(TerminalSafe("\xc2\x9b" "2J\x7f", 100), "\\u009b2J\\x7f");  // C1 CSI, DEL
  EXPECT_EQ(TerminalSafe("bad \xff\xc3(", 100), "bad \\xff\\xc3(");
  EXPECT_EQ(TerminalSafe("\xe4\xb8\xad\xe4\xb8\xad\xe4\xb8\xad", 2), "\xe4\xb8\xad\xe4\xb8\xad...");  // code points
  EXPECT_EQ(TerminalSafe("abc", 3), "abc");
  for (unsigned c = 0; c < 0x20; ++c) {
    const std::string out = TerminalSafe(std::string(1, static_cast<char>(c)), 10);
    for (char o : out) EXPECT_GE(static_cast<unsigned char>(o), 0x20u) << c;
  }
}

TEST_F(BundleTest, RoundTripsEveryField) {
  const BundleContents c = SmallContents();
  Signed s = SignContents(c, *keys_);
  BundleVerifyOptions o;
  o.trusted_key = &s.pub;
  auto b = Bundle::FromBytes(s.bytes, "test.famqb", o);
  ASSERT_TRUE(b.ok()) << b.status().ToString();
  EXPECT_TRUE(b->verification().is_signed);
  EXPECT_TRUE(b->verification().signature_checked);
  EXPECT_EQ(b->verification().key_id, keys_->key_id);
  const fb::Payload& p = b->payload();
  EXPECT_EQ(p.format_version(), kBundleFormatVersion);
  EXPECT_EQ(p.family()->tokenizer_sha256()->str(), c.family.tokenizer_sha256);
  EXPECT_EQ(p.family()->target()->name()->str(), "famq-tiny-s");
  EXPECT_EQ(p.family()->regenerator()->parameters(), 7346176u);
  EXPECT_EQ(p.recipe()->reasoning_cue()->str(), c.recipe.reasoning_cue);
  EXPECT_EQ(p.provenance()->seed(), 42u);
  EXPECT_EQ(p.num_originals(), 2u);
  EXPECT_EQ(p.num_candidates(), 8u);
  EXPECT_EQ(p.num_kept(), 2u);
  EXPECT_EQ(p.total_tokens(), 18u);
  ASSERT_EQ(p.samples()->size(), 3u);
  for (size_t i = 0; i < 3; ++i) {
    const fb::Sample* got = p.samples()->Get(static_cast<flatbuffers::uoffset_t>(i));
    const BundleSample& want = c.samples[i];
    EXPECT_EQ(std::vector<int32_t>(got->tokens()->begin(), got->tokens()->end()), want.tokens);
    EXPECT_EQ(std::vector<uint8_t>(got->token_mask()->begin(), got->token_mask()->end()), want.token_mask);
    EXPECT_EQ(got->weight(), want.weight);
    EXPECT_EQ(got->group(), want.group);
    EXPECT_EQ(got->kind() == fb::SampleKind::Regenerated, want.regenerated);
    EXPECT_EQ(got->scores() != nullptr, want.scores.has_value());
    if (want.scores) {
      EXPECT_EQ(got->scores()->total(), want.scores->total);
    }
    EXPECT_EQ(got->text()->str(), want.text);
  }
  auto j = BundleToJson(*b);
  ASSERT_EQ(j["samples"].size(), 3u);
  EXPECT_EQ(j["samples"][0]["kind"], "regenerated");
  EXPECT_EQ(j["samples"][1]["kind"], "original");
  EXPECT_TRUE(j["samples"][1]["score"].is_null());
  EXPECT_EQ(j["samples"][2]["weight"], 0.5);
  EXPECT_EQ(j["samples"][0]["tokens"].size(), 6u);
  EXPECT_EQ(j["counts"]["kept"], 2);
}

TEST_F(BundleTest, SameContentsAndKeyGiveIdenticalBytes) {
  const BundleContents c = SmallContents();
  EXPECT_EQ(SignContents(c, *keys_).bytes, SignContents(c, *keys_).bytes);
  BundleContents d = c;
  d.samples[0].tokens[3] = 99;
  EXPECT_NE(SignContents(c, *keys_).bytes, SignContents(d, *keys_).bytes);
}

TEST_F(BundleTest, EveryFlippedByteIsRefused) {
  Signed s = SignContents(SmallContents(), *keys_);
  BundleVerifyOptions o;
  o.trusted_key = &s.pub;
  ASSERT_TRUE(Bundle::FromBytes(s.bytes, "t", o).ok());
  std::set<std::string> reasons;
  for (uint8_t mask : {uint8_t{0x01}, uint8_t{0x80}, uint8_t{0xff}}) {
    for (size_t i = 0; i < s.bytes.size(); ++i) {
      std::vector<uint8_t> bad = s.bytes;
      bad[i] ^= mask;
      auto b = Bundle::FromBytes(bad, "t", o);
      ASSERT_FALSE(b.ok()) << "byte " << i << " ^ " << int(mask) << " of " << s.bytes.size() << " went unnoticed";
      const std::string& m = b.status().message();
      reasons.insert(m.substr(0, m.find_first_of("('0123456789")));
    }
  }
  for (const auto& r : reasons) std::printf("  refused: %s\n", r.c_str());
  EXPECT_GE(reasons.size(), 3u);  // identifier, container/canonical form, signature at least
}

TEST_F(BundleTest, EveryTruncationIsRefused) {
  Signed s = SignContents(SmallContents(), *keys_);
  BundleVerifyOptions o;
  o.trusted_key = &s.pub;
  for (size_t n = 0; n < s.bytes.size(); ++n) {
    std::vector<uint8_t> cut(s.bytes.begin(), s.bytes.begin() + static_cast<std::ptrdiff_t>(n));
    EXPECT_FALSE(Bundle::FromBytes(cut, "t", o).ok()) << n;
  }
  std::vector<uint8_t> longer = s.bytes;
  longer.push_back(0);
  EXPECT_FALSE(Bundle::FromBytes(longer, "t", o).ok());
}

TEST_F(BundleTest, WrongKeyMissingKeyAndUnsignedAreRefused) {
  Signed s = SignContents(SmallContents(), *keys_);
  auto other = PublicKey::Parse(other_keys_->public_pem, "other");
  ASSERT_TRUE(other.ok());
  BundleVerifyOptions o;
  o.trusted_key = &*other;
  auto b = Bundle::FromBytes(s.bytes, "t.famqb", o);
  ASSERT_FALSE(b.ok());
  EXPECT_NE(b.status().message().find("not by the trusted key"), std::string::npos) << b.status().ToString();

  BundleVerifyOptions none;
  b = Bundle::FromBytes(s.bytes, "t.famqb", none);
  ASSERT_FALSE(b.ok());
  EXPECT_NE(b.status().message().find("--trust"), std::string::npos);

  // The same key id with another key's signature (a forged key id).
  auto payload = SerializeBundlePayload(SmallContents());
  ASSERT_TRUE(payload.ok());
  auto other_priv = PrivateKey::Parse(other_keys_->private_pem, "other");
  ASSERT_TRUE(other_priv.ok());
  auto forged_sig = other_priv->Sign(Sha256(payload->data(), payload->size()));
  ASSERT_TRUE(forged_sig.ok());
  auto forged = BuildBundleContainer(*payload, keys_->key_id, *forged_sig);
  BundleVerifyOptions trust;
  trust.trusted_key = &s.pub;
  b = Bundle::FromBytes(forged, "forged", trust);
  ASSERT_FALSE(b.ok());
  EXPECT_NE(b.status().message().find("signature does not verify"), std::string::npos) << b.status().ToString();

  auto unsigned_bytes = BuildBundleContainer(*payload, "", {});
  b = Bundle::FromBytes(unsigned_bytes, "u.famqb", trust);
  ASSERT_FALSE(b.ok());
  EXPECT_NE(b.status().message().find("unsigned"), std::string::npos);
  trust.allow_unsigned = true;
  b = Bundle::FromBytes(unsigned_bytes, "u.famqb", trust);
  ASSERT_TRUE(b.ok()) << b.status().ToString();
  EXPECT_FALSE(b->verification().is_signed);
}

TEST_F(BundleTest, ForeignFilesAreRefusedByIdentifier) {
  BundleVerifyOptions o;
  o.allow_unsigned = true;
  auto payload = SerializeBundlePayload(SmallContents());
  ASSERT_TRUE(payload.ok());
  // A bare payload is not a bundle.
  auto b = Bundle::FromBytes(*payload, "payload.bin", o);
  ASSERT_FALSE(b.ok());
  EXPECT_NE(b.status().message().find("not a famq bundle"), std::string::npos) << b.status().ToString();
  std::vector<uint8_t> zeros(4096, 0);
  EXPECT_FALSE(Bundle::FromBytes(zeros, "zeros", o).ok());
}

TEST_F(BundleTest, SerializerRefusesBrokenContents) {
  BundleContents c = SmallContents();
  c.samples[0].weight = 0.9f;  // weights no longer sum to 1
  EXPECT_FALSE(SerializeBundlePayload(c).ok());
  c = SmallContents();
  c.samples[1].token_mask.pop_back();
  EXPECT_FALSE(SerializeBundlePayload(c).ok());
  c = SmallContents();
  c.samples.clear();
  EXPECT_FALSE(SerializeBundlePayload(c).ok());
}

// A payload that passes the FlatBuffers verifier but breaks an invariant is
// refused even when correctly signed.
TEST_F(BundleTest, ReaderChecksPayloadInvariants) {
  flatbuffers::FlatBufferBuilder fbb;
  std::vector<int32_t> tokens{1, 2, 3};
  std::vector<uint8_t> mask{1, 1};  // one short
  auto sample = fb::CreateSample(fbb, fbb.CreateVector(tokens), fbb.CreateVector(mask), 1.0f);
  auto samples = fbb.CreateVector(std::vector<flatbuffers::Offset<fb::Sample>>{sample});
  auto family = fb::CreateFamily(fbb, fbb.CreateString(std::string(64, 'a')));
  auto recipe = fb::CreateRecipe(fbb, 3);
  fb::FinishPayloadBuffer(fbb, fb::CreatePayload(fbb, kBundleFormatVersion, family, recipe, samples, 0, 1, 0, 0, 3));
  std::vector<uint8_t> payload(fbb.GetBufferPointer(), fbb.GetBufferPointer() + fbb.GetSize());
  auto priv = PrivateKey::Parse(keys_->private_pem, "k");
  ASSERT_TRUE(priv.ok());
  auto sig = priv->Sign(Sha256(payload.data(), payload.size()));
  ASSERT_TRUE(sig.ok());
  auto pub = PublicKey::Parse(keys_->public_pem, "p");
  ASSERT_TRUE(pub.ok());
  BundleVerifyOptions o;
  o.trusted_key = &*pub;
  auto b = Bundle::FromBytes(BuildBundleContainer(payload, priv->key_id(), *sig), "inv.famqb", o);
  ASSERT_FALSE(b.ok());
  EXPECT_NE(b.status().message().find("token mask length"), std::string::npos) << b.status().ToString();
}

TEST_F(BundleTest, KeysParseOnlyWhatTheyShould) {
  EXPECT_FALSE(PublicKey::Parse("", "empty").ok());
  EXPECT_FALSE(PublicKey::Parse("-----BEGIN PUBLIC KEY-----\nAAAA\n-----END PUBLIC KEY-----\n", "junk").ok());
  auto as_pub = PublicKey::Parse(keys_->private_pem, "priv.pem");
  ASSERT_FALSE(as_pub.ok());
  EXPECT_NE(as_pub.status().message().find("private key"), std::string::npos);
  auto as_priv = PrivateKey::Parse(keys_->public_pem, "pub.pem");
  ASSERT_FALSE(as_priv.ok());
  EXPECT_NE(as_priv.status().message().find("public key"), std::string::npos);
  auto pub = PublicKey::Parse(keys_->public_pem, "pub.pem");
  ASSERT_TRUE(pub.ok());
  EXPECT_EQ(pub->key_id(), keys_->key_id);
  EXPECT_NE(keys_->key_id, other_keys_->key_id);
}

}  // namespace
}  // namespace famq
