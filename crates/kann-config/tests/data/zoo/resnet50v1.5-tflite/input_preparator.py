# placeholder for the zoo input preparator
