//! Known-answer tests: hashes made by reference tools, recorded here so the tests need no tool at run time.
//!
//! Unless noted, the password is `correct horse` and the tool was Dovecot 2.3.19.1's `doveadm pw` (Debian 12
//! `dovecot-core`), `mkpasswd` 5.5 (Debian `whois`, glibc/libxcrypt), the reference `argon2` CLI (Debian
//! `argon2`, libargon2) or CPython 3.11 `crypt`/`hashlib`. Each hash was also checked with `doveadm pw -t`.

use crate::hash::{PasswordHash, scram_keys, verify};
use crate::scheme::Scheme;

const PASSWORD: &[u8] = b"correct horse";

/// (command that produced it, stored form, scheme it must parse as, password).
const VECTORS: &[(&str, &str, Scheme, &[u8])] = &[
    (
        "doveadm pw -s SHA512-CRYPT -p 'correct horse'",
        "{SHA512-CRYPT}$6$uu1J54M57.PXE/Od$kAx5Ep0hoFKUhVnhd6ASJ.ZB1G.GwenArPl1xszDzSDivUl6jjEamRlHnFtkZI13kiYwzZRQGEh/8U/BDGWCG0",
        Scheme::Sha512Crypt,
        PASSWORD,
    ),
    (
        "doveadm pw -s SHA512-CRYPT -r 10000 -p 'correct horse'",
        "{SHA512-CRYPT}$6$rounds=10000$NJUDeVZXgdpKw.3A$/NGPcTnBIeLfqGVm84g/yaWLnOof1iwTTEQCsEz0AXaED5DRCDTMbXhx0Ag92MhLPM.4bLHWDpu3fPm8gXo1e/",
        Scheme::Sha512Crypt,
        PASSWORD,
    ),
    (
        "doveadm pw -s SHA512-CRYPT -p 'pässwörd:1' (UTF-8 and a colon)",
        "{SHA512-CRYPT}$6$8yglGn9Jh2Of4t7I$I4xiYPhppGPDkgt/p7lhAieGOTBcCC8GH4tFUp81AHlkhpI1rkVHKu/Ida1MqQ/CGxk4bXSLb89JKQCrJ9A7A0",
        Scheme::Sha512Crypt,
        "pässwörd:1".as_bytes(),
    ),
    (
        "echo -n 'correct horse' | mkpasswd -s -m sha-512 (bare, read as Dovecot's default CRYPT)",
        "$6$om64fLzeMLfzBBh6$r.IHnB.vYjohtGWW5SuDxiaBc8QbU5ID2.jINmO.HvhXrmpRowVt7TYu9ovRBPGcuPSFd5OlMcngfpEUDkPbC0",
        Scheme::Sha512Crypt,
        PASSWORD,
    ),
    (
        "python3 -c \"crypt.crypt('correct horse', '$6$rounds=5000$exactly16charsXY')\" (explicit default rounds)",
        "{CRYPT}$6$rounds=5000$exactly16charsXY$Xoyc7gh.1BFOnwniqonbb4LEmEn7sXzDTq8xaKNlxHM4Kvv9TSKpWktPAtNB9j7kLnu6inZGThR/f.6WcQH9k/",
        Scheme::Sha512Crypt,
        PASSWORD,
    ),
    (
        "Dovecot's own crypt self-test, src/auth/password-scheme-crypt.c",
        "$6$rounds=1000$0123456789abcdef$ZIAd5WqfyLkpvsVCVUU1GrvqaZTqvhJoouxdSqJO71l9Ld3tVrfOatEjarhghvEYADkq//LpDnTeO90tcbtHR1",
        Scheme::Sha512Crypt,
        b"08/15!test~4711",
    ),
    (
        "doveadm pw -s SHA256-CRYPT -p 'correct horse'",
        "{SHA256-CRYPT}$5$oTbHdqba2Z.RYKCu$k.G7chA3kUVEeIoD1ZQSLecMlWKOc1iGSyXsArBIpC0",
        Scheme::Sha256Crypt,
        PASSWORD,
    ),
    (
        "doveadm pw -s SHA256-CRYPT -r 1000 -p 'correct horse'",
        "{sha256-crypt}$5$rounds=1000$k5h7KrnDsk3auI1c$J4B.HLJ022rhXL/DjnvIauh6LAUbPEYi0.KBi3LYEn4",
        Scheme::Sha256Crypt,
        PASSWORD,
    ),
    (
        "echo -n 'correct horse' | mkpasswd -s -m sha-256 -R 5000",
        "$5$aA5JlDbare1PaXuo$MKSMVgRnlVlY3ZQ.24ifOQeQVOranlBR9b4u54AR.B9",
        Scheme::Sha256Crypt,
        PASSWORD,
    ),
    (
        "Dovecot's own crypt self-test, src/auth/password-scheme-crypt.c",
        "$5$rounds=1000$0123456789abcdef$K/DksR0DT01hGc8g/kt9McEgrbFMKi9qrb1jehe7hn4",
        Scheme::Sha256Crypt,
        b"08/15!test~4711",
    ),
    (
        "doveadm pw -s BLF-CRYPT -p 'correct horse' (Dovecot's default cost 5)",
        "{BLF-CRYPT}$2y$05$nfwp90ssnVrar1Qrk/3gcuvQFhdJlthexAH1HTpg36oFE3Z1B0wyS",
        Scheme::BlfCrypt,
        PASSWORD,
    ),
    (
        "doveadm pw -s BLF-CRYPT -r 4 -p 'correct horse'; stored under the wrong name, which Dovecot accepts",
        "{SHA512-CRYPT}$2y$04$EU.r6OstGWBmhUjBV0EAOOxG3ST7reej7zLBC0f.7HRi2FS.GKBHO",
        Scheme::BlfCrypt,
        PASSWORD,
    ),
    (
        "echo -n 'correct horse' | mkpasswd -s -m bcrypt -R 5 ($2b$)",
        "$2b$05$rpA3FuVpexdMT9l2p5VpcuAz5garh5jw//GsOgU8lhrGK4pPBf.0a",
        Scheme::BlfCrypt,
        PASSWORD,
    ),
    (
        "Dovecot's own crypt self-test, src/auth/password-scheme-crypt.c ($2a$)",
        "{BLF-CRYPT}$2a$04$0123456789abcdefABCDE.N.drYX5yIAL1LkTaaZotW3yI0hQhZru",
        Scheme::BlfCrypt,
        b"08/15!test~4711",
    ),
    (
        "echo -n 'correct horse' | argon2 saltsaltsalt16by -id -t 2 -k 256 -p 1 -e",
        "{ARGON2ID}$argon2id$v=19$m=256,t=2,p=1$c2FsdHNhbHRzYWx0MTZieQ$XRsfnfF9b9ly18Qz2KV4Cb416WUlAV9iU3UFmzIrZ3g",
        Scheme::Argon2id,
        PASSWORD,
    ),
    (
        "doveadm pw -s SCRAM-SHA-256 -p 'correct horse' (4096 iterations, 16-byte salt)",
        "{SCRAM-SHA-256}4096,tDGxrBYWdGq3K9lMgeQ43w==,n+fJy3sIJLKPzCOl0LGZim8eCRUYqf4mtOOEjvYAoCA=,OYlfCpBTBjUq+JG+rmb4tUSacIkwowaTkXio10CEGno=",
        Scheme::ScramSha256,
        PASSWORD,
    ),
    (
        "doveadm pw -s SCRAM-SHA-256 -p 'pässwörd:1' (UTF-8 and a colon)",
        "{SCRAM-SHA-256}4096,rn9WRhbz3cMg5y5vA/owCw==,Y//ibB7l6Nr1VnZa8iHxepv9qOnvd82lcYQPirPR2QQ=,+AQSrSG8BII113nOL1BT/ERO6PJ+HFqfxCi+8k14i04=",
        Scheme::ScramSha256,
        "pässwörd:1".as_bytes(),
    ),
    (
        "slappasswd -h {SSHA} -s 'correct horse' (OpenLDAP 2.5.13, 4-byte salt)",
        "{SSHA}aZR1xDhdhr7CjmNyZbmROat7U1cM4KIV",
        Scheme::Ssha,
        PASSWORD,
    ),
    (
        "doveadm pw -s SSHA256 -p 'correct horse' (4-byte salt)",
        "{SSHA256}LaceSxvQCHaTw6bmHbxQsac+Q/G/OhWx/qOmA4M14w75LhZf",
        Scheme::Ssha256,
        PASSWORD,
    ),
    (
        "doveadm pw -s SSHA512 -p 'correct horse' (4-byte salt)",
        "{SSHA512}kZMvl+5RyZj0CDOUJF4ui+O2n7ik5P6N0kX9F8DFNBCgDxTL2TEwbyv3m2NsMZOwolEgJXHC1q0O82tcjgjRvk/dweo=",
        Scheme::Ssha512,
        PASSWORD,
    ),
    (
        "python3: base64(sha512(pw + bytes(range(1, 9))).digest() + salt) (8-byte salt)",
        "{SSHA512}ggObOJHDWCqgI5uFv/j9yDNYMvdTgt+Toj8d6cGrSG/e+E9GbH4DkQ8y5jY3NblhoGens+zNVX1mZaFy0qwRwwECAwQFBgcI",
        Scheme::Ssha512,
        PASSWORD,
    ),
    (
        "doveadm pw -s CLEARTEXT -p 'correct horse'",
        "{CLEARTEXT}correct horse",
        Scheme::Plain,
        PASSWORD,
    ),
];

/// `doveadm pw -s ARGON2ID -p 'correct horse'`: Dovecot's default cost (64 MiB, t=3), slow in debug builds.
const DOVEADM_ARGON2ID: &str = "{ARGON2ID}$argon2id$v=19$m=65536,t=3,p=1$oSLl+vXyVCpYVYZ/J/W38g$yAuPsICYP9hmAjQjSk+U00sqbNOC9BUZs6d8YbbWuBg";

#[test]
fn every_vector_parses_as_its_scheme_and_verifies() {
    for (source, stored, scheme, password) in VECTORS {
        let hash = PasswordHash::parse(stored).unwrap_or_else(|e| panic!("{source}: {e}"));
        assert_eq!(hash.scheme(), *scheme, "{source}");
        assert!(verify(&hash, password), "{source}");
    }
}

#[test]
fn wrong_passwords_fail_for_every_vector() {
    for (source, stored, _, password) in VECTORS {
        let hash = PasswordHash::parse(stored).unwrap_or_else(|e| panic!("{source}: {e}"));
        let mut near_miss = password.to_vec();
        near_miss.push(b'!');
        for wrong in [
            &b""[..],
            b"Correct horse",
            &near_miss,
            &password[..password.len() - 1],
        ] {
            assert!(
                !verify(&hash, wrong),
                "{source}: {:?}",
                String::from_utf8_lossy(wrong)
            );
        }
    }
}

#[test]
fn doveadm_argon2id_at_default_cost() {
    let hash = PasswordHash::parse(DOVEADM_ARGON2ID).unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(hash.scheme(), Scheme::Argon2id);
    assert!(verify(&hash, PASSWORD));
    assert!(!verify(&hash, b"correct horsE"));
}

#[test]
fn bcrypt_reads_only_72_bytes_like_libxcrypt() {
    let long = [b'a'; 80];
    let hashed =
        crate::hash_with_rounds(Scheme::BlfCrypt, &long, 4).unwrap_or_else(|e| panic!("{e}"));
    let hash = PasswordHash::parse(&hashed).unwrap_or_else(|e| panic!("{e}"));
    assert!(verify(&hash, &long[..72]));
    assert!(!verify(&hash, &long[..71]));
}

/// `doveadm pw -s SCRAM-SHA-256 -p 'correct horse'`, as above: the keys [`scram_keys`] reads must be the ones Dovecot
/// wrote, so that a SASL SCRAM-SHA-256 exchange against them works for the same password.
#[test]
fn doveadm_scram_sha256_keys() {
    use base64::Engine;
    use base64::engine::general_purpose::STANDARD;

    let (_, stored, _, _) = VECTORS
        .iter()
        .find(|(source, ..)| source.starts_with("doveadm pw -s SCRAM-SHA-256 -p 'correct horse'"))
        .unwrap();
    let keys = scram_keys(&PasswordHash::parse(stored).unwrap()).unwrap();
    assert_eq!(keys.iterations, 4096);
    assert_eq!(STANDARD.encode(&keys.salt), "tDGxrBYWdGq3K9lMgeQ43w==");
    assert_eq!(
        STANDARD.encode(keys.stored_key),
        "n+fJy3sIJLKPzCOl0LGZim8eCRUYqf4mtOOEjvYAoCA="
    );
    assert_eq!(
        STANDARD.encode(keys.server_key),
        "OYlfCpBTBjUq+JG+rmb4tUSacIkwowaTkXio10CEGno="
    );
    assert_eq!(
        keys,
        poppet_sasl::ScramCredentials::from_password_with_salt("correct horse", &keys.salt, 4096)
    );
    // The stored form round-trips through poppet-sasl's writer unchanged.
    assert_eq!(keys.to_dovecot(), *stored);
}
