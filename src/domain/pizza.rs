use serde::{Deserialize, Serialize};

#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum Size {
    Small,
    Medium,
    Large,
}

impl Size {
    pub const ALL: [Size; 3] = [Size::Small, Size::Medium, Size::Large];

    pub fn as_str(self) -> &'static str {
        match self {
            Size::Small => "small",
            Size::Medium => "medium",
            Size::Large => "large",
        }
    }
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum Topping {
    ExtraCheese,
    Pepperoni,
    Mushroom,
}

impl Topping {
    pub const ALL: [Topping; 3] = [Topping::ExtraCheese, Topping::Pepperoni, Topping::Mushroom];

    pub fn as_str(self) -> &'static str {
        match self {
            Topping::ExtraCheese => "extra_cheese",
            Topping::Pepperoni => "pepperoni",
            Topping::Mushroom => "mushroom",
        }
    }

    fn bit(self) -> u8 {
        match self {
            Topping::ExtraCheese => 1,
            Topping::Pepperoni => 2,
            Topping::Mushroom => 4,
        }
    }
}

/// A set of toppings, each at most once.
///
/// Kept as a bit set so two orders with the same toppings compare equal whatever order the
/// customer listed them in; on the wire it is a list in menu order. A list that names a
/// topping twice is refused rather than silently collapsed: it is almost always a client bug.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(try_from = "Vec<Topping>", into = "Vec<Topping>")]
pub struct Toppings(u8);

impl Toppings {
    pub fn from_list(list: &[Topping]) -> Result<Self, DuplicateTopping> {
        let mut bits = 0u8;
        for topping in list {
            if bits & topping.bit() != 0 {
                return Err(DuplicateTopping(*topping));
            }
            bits |= topping.bit();
        }
        Ok(Self(bits))
    }

    pub fn contains(self, topping: Topping) -> bool {
        self.0 & topping.bit() != 0
    }

    pub fn iter(self) -> impl Iterator<Item = Topping> {
        Topping::ALL.into_iter().filter(move |t| self.contains(*t))
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[error("the topping '{}' is listed more than once", .0.as_str())]
pub struct DuplicateTopping(pub Topping);

impl TryFrom<Vec<Topping>> for Toppings {
    type Error = DuplicateTopping;
    fn try_from(list: Vec<Topping>) -> Result<Self, Self::Error> {
        Self::from_list(&list)
    }
}

impl From<Toppings> for Vec<Topping> {
    fn from(toppings: Toppings) -> Self {
        toppings.iter().collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn order_of_listing_does_not_matter() {
        let a = Toppings::from_list(&[Topping::Mushroom, Topping::Pepperoni]).unwrap();
        let b = Toppings::from_list(&[Topping::Pepperoni, Topping::Mushroom]).unwrap();
        assert_eq!(a, b);
        assert_eq!(Vec::from(a), vec![Topping::Pepperoni, Topping::Mushroom]);
    }

    #[test]
    fn a_topping_listed_twice_is_refused() {
        let err = Toppings::from_list(&[Topping::Pepperoni, Topping::Pepperoni]).unwrap_err();
        assert_eq!(err.to_string(), "the topping 'pepperoni' is listed more than once");
    }

    #[test]
    fn json_names_are_snake_case() {
        let t: Toppings = serde_json::from_str(r#"["extra_cheese"]"#).unwrap();
        assert!(t.contains(Topping::ExtraCheese));
        assert!(serde_json::from_str::<Toppings>(r#"["anchovies"]"#).is_err());
    }
}
