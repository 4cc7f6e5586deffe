# placeholder for the zoo output preparator
