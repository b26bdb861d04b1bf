//! `${faker.METHOD}`: the method names of Python's Faker that plans use, generated with the
//! `fake` crate from the virtual user's own random generator (so `--seed` reproduces them).

use fake::Fake;
use fake::faker::{address, company, internet, job, lorem, name, phone_number};
use rand::Rng;
use rand::rngs::SmallRng;

/// A Faker method this engine can generate.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Faker {
    Name,
    FirstName,
    LastName,
    Email,
    FreeEmail,
    UserName,
    Password,
    PhoneNumber,
    Address,
    StreetAddress,
    StreetName,
    City,
    Country,
    CountryCode,
    State,
    Postcode,
    Company,
    Job,
    Word,
    Sentence,
    Paragraph,
    Text,
    Ipv4,
    Ipv6,
    MacAddress,
    UserAgent,
    Uuid4,
    Url,
    DomainName,
    Latitude,
    Longitude,
    Boolean,
    RandomInt,
    BuildingNumber,
}

impl Faker {
    /// The accepted method names, in the order of `from_name`.
    pub(crate) const NAMES: &'static [&'static str] = &[
        "name",
        "first_name",
        "last_name",
        "email",
        "safe_email",
        "free_email",
        "user_name",
        "password",
        "phone_number",
        "address",
        "street_address",
        "street_name",
        "city",
        "country",
        "country_code",
        "state",
        "postcode",
        "zipcode",
        "company",
        "job",
        "word",
        "sentence",
        "paragraph",
        "text",
        "ipv4",
        "ipv6",
        "mac_address",
        "user_agent",
        "uuid4",
        "url",
        "domain_name",
        "latitude",
        "longitude",
        "boolean",
        "random_int",
        "building_number",
    ];

    pub(crate) fn from_name(name: &str) -> Option<Faker> {
        Some(match name {
            "name" => Faker::Name,
            "first_name" => Faker::FirstName,
            "last_name" => Faker::LastName,
            "email" | "safe_email" => Faker::Email,
            "free_email" => Faker::FreeEmail,
            "user_name" => Faker::UserName,
            "password" => Faker::Password,
            "phone_number" => Faker::PhoneNumber,
            "address" => Faker::Address,
            "street_address" => Faker::StreetAddress,
            "street_name" => Faker::StreetName,
            "city" => Faker::City,
            "country" => Faker::Country,
            "country_code" => Faker::CountryCode,
            "state" => Faker::State,
            "postcode" | "zipcode" => Faker::Postcode,
            "company" => Faker::Company,
            "job" => Faker::Job,
            "word" => Faker::Word,
            "sentence" => Faker::Sentence,
            "paragraph" => Faker::Paragraph,
            "text" => Faker::Text,
            "ipv4" => Faker::Ipv4,
            "ipv6" => Faker::Ipv6,
            "mac_address" => Faker::MacAddress,
            "user_agent" => Faker::UserAgent,
            "uuid4" => Faker::Uuid4,
            "url" => Faker::Url,
            "domain_name" => Faker::DomainName,
            "latitude" => Faker::Latitude,
            "longitude" => Faker::Longitude,
            "boolean" => Faker::Boolean,
            "random_int" => Faker::RandomInt,
            "building_number" => Faker::BuildingNumber,
            _ => return None,
        })
    }

    pub(crate) fn generate(self, rng: &mut SmallRng) -> String {
        use fake::locales::EN;
        match self {
            Faker::Name => name::raw::Name(EN).fake_with_rng(rng),
            Faker::FirstName => name::raw::FirstName(EN).fake_with_rng(rng),
            Faker::LastName => name::raw::LastName(EN).fake_with_rng(rng),
            Faker::Email => internet::raw::SafeEmail(EN).fake_with_rng(rng),
            Faker::FreeEmail => internet::raw::FreeEmail(EN).fake_with_rng(rng),
            Faker::UserName => internet::raw::Username(EN).fake_with_rng(rng),
            Faker::Password => internet::raw::Password(EN, 10..16).fake_with_rng(rng),
            Faker::PhoneNumber => phone_number::raw::PhoneNumber(EN).fake_with_rng(rng),
            Faker::Address | Faker::StreetAddress => {
                let number: String = address::raw::BuildingNumber(EN).fake_with_rng(rng);
                let street: String = address::raw::StreetName(EN).fake_with_rng(rng);
                if self == Faker::Address {
                    let city: String = address::raw::CityName(EN).fake_with_rng(rng);
                    let zip: String = address::raw::ZipCode(EN).fake_with_rng(rng);
                    format!("{number} {street}, {city} {zip}")
                } else {
                    format!("{number} {street}")
                }
            }
            Faker::StreetName => address::raw::StreetName(EN).fake_with_rng(rng),
            Faker::City => address::raw::CityName(EN).fake_with_rng(rng),
            Faker::Country => address::raw::CountryName(EN).fake_with_rng(rng),
            Faker::CountryCode => address::raw::CountryCode(EN).fake_with_rng(rng),
            Faker::State => address::raw::StateName(EN).fake_with_rng(rng),
            Faker::Postcode => address::raw::ZipCode(EN).fake_with_rng(rng),
            Faker::Company => company::raw::CompanyName(EN).fake_with_rng(rng),
            Faker::Job => job::raw::Title(EN).fake_with_rng(rng),
            Faker::Word => lorem::raw::Word(EN).fake_with_rng(rng),
            Faker::Sentence => lorem::raw::Sentence(EN, 4..10).fake_with_rng(rng),
            Faker::Paragraph | Faker::Text => lorem::raw::Paragraph(EN, 3..6).fake_with_rng(rng),
            Faker::Ipv4 => internet::raw::IPv4(EN).fake_with_rng(rng),
            Faker::Ipv6 => internet::raw::IPv6(EN).fake_with_rng(rng),
            Faker::MacAddress => internet::raw::MACAddress(EN).fake_with_rng(rng),
            Faker::UserAgent => internet::raw::UserAgent(EN).fake_with_rng(rng),
            Faker::Uuid4 => {
                let bytes: [u8; 16] = rng.random();
                uuid::Builder::from_random_bytes(bytes)
                    .into_uuid()
                    .to_string()
            }
            Faker::Url | Faker::DomainName => {
                let word: String = lorem::raw::Word(EN).fake_with_rng(rng);
                let suffix: String = internet::raw::DomainSuffix(EN).fake_with_rng(rng);
                if self == Faker::Url {
                    format!("https://{word}.{suffix}/")
                } else {
                    format!("{word}.{suffix}")
                }
            }
            Faker::Latitude => format!("{:.6}", rng.random_range(-90.0..90.0_f64)),
            Faker::Longitude => format!("{:.6}", rng.random_range(-180.0..180.0_f64)),
            Faker::Boolean => if rng.random::<bool>() {
                "True"
            } else {
                "False"
            }
            .to_string(),
            Faker::RandomInt => rng.random_range(0..=9999).to_string(),
            Faker::BuildingNumber => address::raw::BuildingNumber(EN).fake_with_rng(rng),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use rand::SeedableRng;

    #[test]
    fn every_name_generates_text_and_a_seed_repeats_it() {
        for name in Faker::NAMES {
            let f = Faker::from_name(name).expect(name);
            let a = f.generate(&mut SmallRng::seed_from_u64(7));
            let b = f.generate(&mut SmallRng::seed_from_u64(7));
            assert!(!a.is_empty(), "{name}");
            assert_eq!(a, b, "{name}");
        }
        assert!(Faker::from_name("nope").is_none());
    }
}
